"""Warehouse tables, as SQLAlchemy Core metadata.

This module is the current truth of the schema. Alembic migrations under
``engage/warehouse/migrations`` build it step by step, and a test checks that
a freshly migrated database matches this metadata exactly.

Conventions:
- Every table has a surrogate integer key for joins *and* a natural key
  declared as a unique constraint named ``uq_<table>_natural_key``: loads are
  upserts on that natural key, so a rerun never duplicates a row.
- Times are stored in UTC. PostgreSQL keeps the time zone; SQLite returns
  naive datetimes, which are UTC by this convention.
- ``*_date`` columns are the pipeline's logical date (the day of the run),
  which is what a rerun of a day replaces.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ITEM_KINDS = ("post", "reply", "feed_item", "comment")
RUN_STATUSES = ("running", "success", "not_modified", "failed", "skipped")
SUBJECT_TYPES = ("item", "account")
STAGE_LABELS = (
    "awareness",
    "consideration",
    "evaluation",
    "decision",
    "adoption",
    "off_topic",
)


def _tz() -> DateTime:
    return DateTime(timezone=True)


source = Table(
    "source",
    metadata,
    Column("source_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("url", Text, nullable=False),
    Column("is_own", Boolean, nullable=False, default=False),
    Column("created_at", _tz(), nullable=False),
    Column("updated_at", _tz(), nullable=False),
    # Conditional GET validators, written in the same transaction as the
    # items they describe, so a failed load never leaves a stale ETag behind.
    Column("etag", Text),
    Column("last_modified", Text),
    # Incremental collectors keep their cursor here (JSON text).
    Column("watermark", Text),
    Column("last_success_at", _tz()),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("next_attempt_at", _tz()),
    UniqueConstraint("name", name="uq_source_natural_key"),
)

collection_run = Table(
    "collection_run",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", Integer, ForeignKey("source.source_id", ondelete="CASCADE"), nullable=False),
    Column("run_date", Date, nullable=False),
    Column("started_at", _tz(), nullable=False),
    Column("finished_at", _tz()),
    Column("status", String(20), nullable=False),
    Column("http_status", Integer),
    Column("items", Integer, nullable=False, default=0),
    Column("observations", Integer, nullable=False, default=0),
    Column("requests", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("loaded_at", _tz()),
    # Why the collected records could not be loaded (migration 0005); cleared by a load.
    Column("load_error", Text),
    UniqueConstraint("source_id", "started_at", name="uq_collection_run_natural_key"),
    CheckConstraint(
        "status in ('running', 'success', 'not_modified', 'failed', 'skipped')",
        name="status_domain",
    ),
    Index("ix_collection_run_date", "run_date", "source_id"),
)

author = Table(
    "author",
    metadata,
    Column("author_id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", Integer, ForeignKey("source.source_id", ondelete="CASCADE"), nullable=False),
    # The platform's own id for the person (user id, handle, or the byline
    # text for feeds); unique within a source.
    Column("external_id", String(500), nullable=False),
    Column("handle", String(500)),
    Column("display_name", Text),
    Column("title", Text),
    Column("bio", Text),
    Column("profile_url", Text),
    Column("email", String(320)),
    Column("is_ours", Boolean, nullable=False, default=False),
    # By the title or bio shown on the platform (transforms.decision_makers).
    Column("is_decision_maker", Boolean, nullable=False, default=False, server_default=false()),
    Column("first_seen_at", _tz(), nullable=False),
    Column("last_seen_at", _tz(), nullable=False),
    UniqueConstraint("source_id", "external_id", name="uq_author_natural_key"),
)

content_item = Table(
    "content_item",
    metadata,
    Column("item_id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", Integer, ForeignKey("source.source_id", ondelete="CASCADE"), nullable=False),
    # Stable identity within the source: the platform id, the feed guid, or
    # a hash of link and title for entries without one.
    Column("external_id", String(500), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("thread_external_id", String(500)),
    Column("parent_external_id", String(500)),
    Column("author_id", Integer, ForeignKey("author.author_id", ondelete="SET NULL")),
    Column("title", Text),
    Column("body_text", Text),
    Column("url", Text),
    Column("published_at", _tz()),
    Column("first_collected_at", _tz(), nullable=False),
    Column("last_collected_at", _tz(), nullable=False),
    # The logical date on which the item was first collected.
    Column("collected_date", Date, nullable=False),
    # sha256 of title and text: changes when the item is edited, which is
    # how the classifier finds what to (re)classify.
    Column("content_hash", String(64), nullable=False),
    Column("is_ours", Boolean, nullable=False, default=False),
    UniqueConstraint("source_id", "external_id", name="uq_content_item_natural_key"),
    CheckConstraint("kind in ('post', 'reply', 'feed_item', 'comment')", name="kind_domain"),
    Index("ix_content_item_published", "source_id", "published_at"),
    Index("ix_content_item_thread", "source_id", "thread_external_id"),
    Index("ix_content_item_collected_date", "collected_date"),
    Index("ix_content_item_published_at", "published_at"),
    Index("ix_content_item_author", "author_id"),
)

engagement_observation = Table(
    "engagement_observation",
    metadata,
    Column("observation_id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", Integer, ForeignKey("source.source_id", ondelete="CASCADE"), nullable=False),
    # 'item' (a content item's external id) or 'account' (an account or
    # profile on the platform, e.g. our Mastodon account).
    Column("subject_type", String(10), nullable=False),
    Column("subject_external_id", String(500), nullable=False),
    # comments, likes, reposts, replies, followers, following, posts, score...
    Column("metric", String(40), nullable=False),
    Column("value", Float, nullable=False),
    Column("observed_at", _tz(), nullable=False),
    Column("observed_date", Date, nullable=False),
    UniqueConstraint(
        "source_id",
        "subject_type",
        "subject_external_id",
        "metric",
        "observed_date",
        name="uq_engagement_observation_natural_key",
    ),
    CheckConstraint("subject_type in ('item', 'account')", name="subject_type_domain"),
    Index("ix_engagement_observation_date", "observed_date", "source_id"),
)

# --- Buying-journey classification -------------------------------------

model_version = Table(
    "model_version",
    metadata,
    Column("model_version_id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("created_at", _tz(), nullable=False),
    Column("artifact_path", Text, nullable=False),
    Column("training_data_sha256", String(64), nullable=False),
    Column("test_macro_f1", Float),
    Column("test_accuracy", Float),
    Column("baseline_macro_f1", Float),
    Column("metrics_json", Text),
    Column("promoted_at", _tz()),
    Column("is_current", Boolean, nullable=False, default=False),
    UniqueConstraint("version", name="uq_model_version_natural_key"),
)

stage_prediction = Table(
    "stage_prediction",
    metadata,
    Column("prediction_id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("content_item.item_id", ondelete="CASCADE"), nullable=False),
    # The stored label: the model's label, or 'uncertain' below the
    # configured confidence threshold.
    Column("label", String(20), nullable=False),
    Column("model_label", String(20), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("model_version", String(64), nullable=False),
    # content_hash of the item when it was classified.
    Column("content_hash", String(64), nullable=False),
    Column("predicted_at", _tz(), nullable=False),
    UniqueConstraint("item_id", name="uq_stage_prediction_natural_key"),
    Index("ix_stage_prediction_version", "model_version"),
)

label_feedback = Table(
    "label_feedback",
    metadata,
    Column("feedback_id", Integer, primary_key=True, autoincrement=True),
    # Either an item in the warehouse, or free text (external_ref names it).
    Column("item_id", Integer, ForeignKey("content_item.item_id", ondelete="CASCADE")),
    Column("text_sha256", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("label", String(20), nullable=False),
    Column("analyst", String(200)),
    Column("note", Text),
    Column("created_at", _tz(), nullable=False),
    UniqueConstraint("text_sha256", name="uq_label_feedback_natural_key"),
    CheckConstraint(
        "label in ('awareness', 'consideration', 'evaluation', 'decision', 'adoption', 'off_topic')",
        name="label_domain",
    ),
)

# --- Prospects, accounts, referrals (CRM side) ----------------------------

account = Table(
    "account",
    metadata,
    Column("account_id", Integer, primary_key=True, autoincrement=True),
    # The CRM's id (Salesforce Account Id, HubSpot Company ID), or the
    # domain when the export has no id.
    Column("crm_id", String(200), nullable=False),
    Column("name", Text, nullable=False),
    Column("domain", String(253)),
    Column("owner", String(200)),
    Column("industry", String(200)),
    Column("is_target", Boolean, nullable=False, default=True),
    Column("updated_at", _tz(), nullable=False),
    UniqueConstraint("crm_id", name="uq_account_natural_key"),
    Index("ix_account_domain", "domain"),
)

prospect = Table(
    "prospect",
    metadata,
    Column("prospect_id", Integer, primary_key=True, autoincrement=True),
    Column("crm_id", String(200), nullable=False),
    Column("account_id", Integer, ForeignKey("account.account_id", ondelete="SET NULL")),
    Column("full_name", Text),
    Column("email", String(320)),
    Column("title", Text),
    Column("owner", String(200)),
    # Profile URLs and handles, normalised (lower case, no scheme or "@").
    Column("linkedin_url", Text),
    Column("twitter_handle", String(200)),
    Column("other_handles", Text),
    Column("is_decision_maker", Boolean, nullable=False, default=False),
    Column("decision_maker_rule", String(100)),
    Column("updated_at", _tz(), nullable=False),
    UniqueConstraint("crm_id", name="uq_prospect_natural_key"),
    Index("ix_prospect_email", "email"),
    Index("ix_prospect_account", "account_id"),
)

author_match = Table(
    "author_match",
    metadata,
    Column("author_id", Integer, ForeignKey("author.author_id", ondelete="CASCADE"), nullable=False),
    # NULL prospect with method 'override_none': a confirmed non-match.
    Column("prospect_id", Integer, ForeignKey("prospect.prospect_id", ondelete="CASCADE")),
    Column("account_id", Integer, ForeignKey("account.account_id", ondelete="CASCADE")),
    # email | profile_url | handle | name_and_domain | email_domain | override | override_none
    Column("method", String(30), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("matched_at", _tz(), nullable=False),
    UniqueConstraint("author_id", name="uq_author_match_natural_key"),
    Index("ix_author_match_account", "account_id"),
)

match_override = Table(
    "match_override",
    metadata,
    Column("override_id", Integer, primary_key=True, autoincrement=True),
    Column("source_name", String(200), nullable=False),
    Column("author_external_id", String(500), nullable=False),
    # The prospect's CRM id, or NULL for "this author is nobody we know".
    Column("prospect_crm_id", String(200)),
    Column("note", Text),
    Column("created_at", _tz(), nullable=False),
    UniqueConstraint("source_name", "author_external_id", name="uq_match_override_natural_key"),
)

referral = Table(
    "referral",
    metadata,
    Column("referral_id", Integer, primary_key=True, autoincrement=True),
    Column("referral_date", Date, nullable=False),
    # sha256 of the normalised referrer, landing URL and UTM parameters.
    Column("referral_key", String(64), nullable=False),
    Column("referrer_url", Text),
    Column("referrer_host", String(253)),
    Column("landing_url", Text, nullable=False),
    Column("landing_path", Text),
    Column("utm_source", String(200)),
    Column("utm_medium", String(200)),
    Column("utm_campaign", String(200)),
    Column("utm_term", String(200)),
    Column("utm_content", String(200)),
    Column("sessions", Integer, nullable=False, default=1),
    # Attribution: the content item the visit came from (a post that linked
    # to us) and/or the item it landed on (our own published content).
    Column("referring_item_id", Integer, ForeignKey("content_item.item_id", ondelete="SET NULL")),
    Column("landing_item_id", Integer, ForeignKey("content_item.item_id", ondelete="SET NULL")),
    Column("source_id", Integer, ForeignKey("source.source_id", ondelete="SET NULL")),
    Column("imported_from", Text),
    UniqueConstraint("referral_date", "referral_key", name="uq_referral_natural_key"),
    Index("ix_referral_date", "referral_date"),
)

# --- Facts, rebuilt one day at a time -------------------------------------

fct_source_daily = Table(
    "fct_source_daily",
    metadata,
    Column("fact_date", Date, nullable=False),
    Column("source_id", Integer, ForeignKey("source.source_id", ondelete="CASCADE"), nullable=False),
    Column("items_published", Integer, nullable=False),
    Column("our_items_published", Integer, nullable=False),
    Column("threads_started_by_us", Integer, nullable=False),
    Column("threads_started_by_others", Integer, nullable=False),
    Column("replies", Integer, nullable=False),
    Column("our_replies", Integer, nullable=False),
    # Sums of the latest observation of the day per item (comments, likes...).
    Column("comments", Float, nullable=False),
    Column("likes", Float, nullable=False),
    Column("reposts", Float, nullable=False),
    Column("followers", Float),
    Column("followers_change", Float),
    Column("referrals", Integer, nullable=False),
    Column("decision_makers_active", Integer, nullable=False),
    Column("prospects_active", Integer, nullable=False),
    # Threads whose first reply by us came this day, and how long it took.
    Column("threads_answered", Integer, nullable=False),
    # Our replies in threads where we had already replied before.
    Column("our_follow_ups", Integer, nullable=False),
    Column("median_response_minutes", Float),
    Column("built_at", _tz(), nullable=False),
    UniqueConstraint("fact_date", "source_id", name="uq_fct_source_daily_natural_key"),
)

fct_account_daily = Table(
    "fct_account_daily",
    metadata,
    Column("fact_date", Date, nullable=False),
    Column("account_id", Integer, ForeignKey("account.account_id", ondelete="CASCADE"), nullable=False),
    Column("items", Integer, nullable=False),
    Column("people_active", Integer, nullable=False),
    Column("decision_makers_active", Integer, nullable=False),
    Column("replies_to_us", Integer, nullable=False),
    # The most advanced stage shown by the account's people's items that day.
    Column("stage", String(20)),
    Column("stage_rank", Integer),
    Column("built_at", _tz(), nullable=False),
    UniqueConstraint("fact_date", "account_id", name="uq_fct_account_daily_natural_key"),
)

fct_item_engagement = Table(
    "fct_item_engagement",
    metadata,
    Column("fact_date", Date, nullable=False),
    Column("item_id", Integer, ForeignKey("content_item.item_id", ondelete="CASCADE"), nullable=False),
    Column("source_id", Integer, ForeignKey("source.source_id", ondelete="CASCADE"), nullable=False),
    Column("hours_since_published", Float),
    Column("engagement", Float, nullable=False),
    # Change since the item's previous observation (its first: the total).
    Column("engagement_change", Float, nullable=False),
    Column("built_at", _tz(), nullable=False),
    UniqueConstraint("fact_date", "item_id", name="uq_fct_item_engagement_natural_key"),
    # An item's previous observation, without scanning the history.
    Index("ix_fct_item_engagement_item", "item_id", "fact_date"),
)

account_stage_history = Table(
    "account_stage_history",
    metadata,
    Column("account_id", Integer, ForeignKey("account.account_id", ondelete="CASCADE"), nullable=False),
    Column("stage", String(20), nullable=False),
    Column("entered_date", Date, nullable=False),
    Column("previous_stage", String(20)),
    UniqueConstraint("account_id", "entered_date", name="uq_account_stage_history_natural_key"),
)

# --- Data quality and privacy (migration 0004) --------------------------------

QUALITY_SEVERITIES = ("error", "warning")

quality_check = Table(
    "quality_check",
    metadata,
    # One row per check, subject and day: rerunning the day's checks replaces them.
    Column("check_date", Date, nullable=False),
    Column("check_name", String(60), nullable=False),
    Column("subject", String(200), nullable=False),  # a table, or a source's name
    Column("severity", String(10), nullable=False),  # error: fails the run; warning: reported
    Column("passed", Boolean, nullable=False),
    Column("observed", Float),
    Column("expected", Float),
    Column("detail", Text),
    Column("checked_at", _tz(), nullable=False),
    UniqueConstraint("check_date", "check_name", "subject", name="uq_quality_check_natural_key"),
)

privacy_request = Table(
    "privacy_request",
    metadata,
    # A forget request, kept without the person's data: only an unsalted
    # SHA-256 of the normalised identifier, so a repeat is recognised.
    Column("request_id", Integer, primary_key=True, autoincrement=True),
    Column("identifier_kind", String(10), nullable=False),  # email | handle
    Column("identifier_sha256", String(64), nullable=False),
    Column("requested_at", _tz(), nullable=False),
    Column("removed_json", Text, nullable=False),  # rows removed per table, files removed
    UniqueConstraint("identifier_sha256", "requested_at", name="uq_privacy_request_natural_key"),
)
