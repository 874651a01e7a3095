"""What every collector yields: authors, content items, engagement observations.

Collectors build these plain records from responses; the loader in
``transforms.load`` turns them into warehouse rows. Records are staged as
JSON between the collect and load steps, so they only hold JSON-friendly
values (datetimes are serialised as ISO 8601 in UTC).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

MAX_ID = 500
MAX_TEXT = 20_000
MAX_TITLE = 1_000


def bounded_id(value: str) -> str:
    """An identifier that fits the warehouse column: long ones are hashed."""
    value = value.strip()
    if len(value) <= MAX_ID:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def clip(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text[:limit] if len(text) > limit else text


@dataclass
class AuthorRecord:
    external_id: str
    handle: str | None = None
    display_name: str | None = None
    title: str | None = None
    bio: str | None = None
    profile_url: str | None = None
    email: str | None = None


@dataclass
class ItemRecord:
    external_id: str
    kind: str  # post | reply | feed_item | comment
    title: str | None = None
    text: str | None = None
    url: str | None = None
    published_at: datetime | None = None
    author_external_id: str | None = None
    thread_external_id: str | None = None
    parent_external_id: str | None = None


@dataclass
class ObservationRecord:
    subject_type: str  # item | account
    subject_external_id: str
    metric: str
    value: float
    # The day the value was true, ISO 8601 (YYYY-MM-DD), when the source says so
    # (a dated export row); None: the run's day.
    observed_date: str | None = None


@dataclass
class CollectResult:
    """Everything one source gave on one run, plus its new cursor state."""

    http_status: int | None = None
    not_modified: bool = False
    authors: list[AuthorRecord] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    observations: list[ObservationRecord] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    watermark: str | None = None
    warnings: list[str] = field(default_factory=list)
    requests: int = 0
    # Rows for the ``referral`` table (web-analytics exports read by the ``csv``
    # kind), as ``transforms.referrals.referral_rows`` makes them, dates in ISO.
    referrals: list[dict[str, Any]] = field(default_factory=list)

    def has_records(self) -> bool:
        """Whether there is anything to load (a 304 or an empty page has not)."""
        return bool(self.authors or self.items or self.observations or self.referrals)

    def to_json(self) -> dict[str, Any]:
        # Shallow copies: every record field is a scalar (dataclasses.asdict deep-copies).
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["authors"] = [dict(vars(a)) for a in self.authors]
        data["observations"] = [dict(vars(o)) for o in self.observations]
        items = []
        for item in self.items:
            row = dict(vars(item))
            if row["published_at"] is not None:
                row["published_at"] = row["published_at"].astimezone(UTC).isoformat()
            items.append(row)
        data["items"] = items
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CollectResult:
        items = []
        for raw in data.get("items", []):
            raw = dict(raw)
            if raw.get("published_at"):
                raw["published_at"] = datetime.fromisoformat(raw["published_at"])
            items.append(ItemRecord(**raw))
        scalars = {
            f.name: data[f.name]
            for f in fields(cls)
            if f.name not in ("authors", "items", "observations") and f.name in data
        }
        return cls(
            authors=[AuthorRecord(**a) for a in data.get("authors", [])],
            items=items,
            observations=[ObservationRecord(**o) for o in data.get("observations", [])],
            **scalars,
        )
