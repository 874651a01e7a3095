"""data-quality results and privacy requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 02:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_check",
        sa.Column("check_date", sa.Date(), nullable=False),
        sa.Column("check_name", sa.String(length=60), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("observed", sa.Float(), nullable=True),
        sa.Column("expected", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("check_date", "check_name", "subject", name="uq_quality_check_natural_key"),
    )
    op.create_table(
        "privacy_request",
        sa.Column("request_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("identifier_kind", sa.String(length=10), nullable=False),
        sa.Column("identifier_sha256", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_privacy_request"),
        sa.UniqueConstraint("identifier_sha256", "requested_at", name="uq_privacy_request_natural_key"),
    )


def downgrade() -> None:
    op.drop_table("privacy_request")
    op.drop_table("quality_check")
