"""Analysts' corrected labels: import from CSV, read back as training examples.

CSV columns: ``item_id`` (a content item in the warehouse) or ``text``,
``label`` (one of the six stages), and optionally ``analyst`` and ``note``.
A row for the same text again replaces the earlier correction.
"""

from __future__ import annotations

import csv
import hashlib
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from engage.errors import ModelError
from engage.warehouse.db import upsert
from engage.warehouse.schema import content_item, label_feedback
from models.stage_classifier import LABELS, Example

MAX_FEEDBACK_TEXT = 20_000


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def import_labels(engine: Engine, path: Path, *, analyst: str | None = None) -> int:
    """Validate every row first, then store them all in one transaction."""
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or [])
        if "label" not in columns or not ({"item_id", "text"} & columns):
            raise ModelError(
                f"{path}: needs a 'label' column and an 'item_id' or 'text' column (has: {sorted(columns)})"
            )
        records = list(reader)
    stamp = datetime.now(UTC)
    with engine.connect() as conn:
        for number, record in enumerate(records, start=2):
            label = (record.get("label") or "").strip().lower().replace("-", "_").replace(" ", "_")
            if label not in LABELS:
                raise ModelError(
                    f"{path}:{number}: label {record.get('label')!r} is not one of {', '.join(LABELS)}"
                )
            item_id = (record.get("item_id") or "").strip()
            text = (record.get("text") or "").strip()
            if item_id:
                if not item_id.isdigit():
                    raise ModelError(f"{path}:{number}: item_id {item_id!r} is not a number")
                found = conn.execute(
                    select(content_item.c.title, content_item.c.body_text).where(
                        content_item.c.item_id == int(item_id)
                    )
                ).first()
                if found is None:
                    raise ModelError(f"{path}:{number}: no content item {item_id} in the warehouse")
                text = "\n".join(p for p in (found.title, found.body_text) if p)
            if not text:
                raise ModelError(f"{path}:{number}: empty text")
            text = text[:MAX_FEEDBACK_TEXT]
            rows.append(
                {
                    "item_id": int(item_id) if item_id else None,
                    "text_sha256": _sha(text),
                    "text": text,
                    "label": label,
                    "analyst": (record.get("analyst") or analyst or "")[:200] or None,
                    "note": record.get("note") or None,
                    "created_at": stamp,
                }
            )
    with engine.begin() as conn:
        upsert(
            conn,
            label_feedback,
            rows,
            key=["text_sha256"],
            update=["item_id", "label", "analyst", "note", "created_at"],
        )
    return len(rows)


def feedback_examples(engine: Engine) -> list[Example]:
    with engine.connect() as conn:
        return [
            Example(r.text, r.label)
            for r in conn.execute(
                select(label_feedback.c.text, label_feedback.c.label).order_by(label_feedback.c.feedback_id)
            )
        ]
