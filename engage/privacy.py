"""Privacy: forgetting a person on request, and retention of personal data.

``forget`` removes a person, named by e-mail address or handle, from every
table that holds them -- their author rows on every source, the content
they wrote with its predictions, engagement history and label feedback,
the observations of that content and of their account, their matches and
match overrides, and the CRM prospect with that e-mail or handle -- and
from the files under the data directory: every landed raw response whose
body mentions them and their records in staged, not yet loaded, results.
It logs what it removed (counts, never the person's data), records the
request in ``privacy_request`` with only a SHA-256 of the identifier, and
is idempotent: a second run finds nothing and removes nothing.

What stays: daily aggregates (``fct_*``), which hold counts and no one's
data; other people's posts, including replies to the forgotten person
and any text that quotes them.

``anonymise_unmatched`` applies the retention for people never matched to
a prospect (nor, by their company domain, to an account): once not seen for ``ENGAGE_UNMATCHED_RETENTION_DAYS`` their
profile fields (handle, name, title, bio, profile URL, e-mail) are removed
and their id replaced by a hash, so their public posts stay in the KPIs
without saying who wrote them. ``retention_step`` runs it after the raw
retention at the end of each daily run.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, insert, or_, select, tuple_, update

from engage.config import SourcesConfig
from engage.errors import EngageError
from engage.settings import Settings
from engage.warehouse.schema import (
    author,
    author_match,
    content_item,
    engagement_observation,
    fct_item_engagement,
    label_feedback,
    match_override,
    privacy_request,
    prospect,
    referral,
    source,
    stage_prediction,
)

log = logging.getLogger(__name__)

ANONYMOUS_PREFIX = "anon:"
CHUNK = 500


class PrivacyError(EngageError):
    """A forget request that cannot be carried out as asked."""


@dataclass
class ForgetReport:
    identifier_kind: str
    removed: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.removed.values()) + len(self.files)


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or " " in email:
        raise PrivacyError(f"{email!r} is not an e-mail address")
    return email


def normalise_handle(handle: str) -> str:
    handle = handle.strip().lstrip("@").lower()
    if not handle or " " in handle:
        raise PrivacyError(f"{handle!r} is not a handle")
    return handle


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _handle_forms(handle: str) -> list[str]:
    return [handle, "@" + handle]


def _find_authors(
    conn: Connection, email: str | None, handle: str | None
) -> list[tuple[int, int, str, str | None]]:
    """(author_id, source_id, external_id, handle) of the person's author rows."""
    conditions = []
    if email:
        conditions.append(func.lower(author.c.email) == email)
    if handle:
        conditions.append(func.lower(author.c.handle).in_(_handle_forms(handle)))
    rows = conn.execute(
        select(author.c.author_id, author.c.source_id, author.c.external_id, author.c.handle).where(
            or_(*conditions)
        )
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _find_prospects(conn: Connection, email: str | None, handle: str | None) -> list[tuple[int, str]]:
    """(prospect_id, crm_id) of CRM prospects with that e-mail or handle."""
    found = []
    rows = conn.execute(
        select(
            prospect.c.prospect_id,
            prospect.c.crm_id,
            prospect.c.email,
            prospect.c.twitter_handle,
            prospect.c.other_handles,
        )
    )
    for prospect_id, crm_id, p_email, twitter, others in rows:
        if email and p_email and p_email.strip().lower() == email:
            found.append((prospect_id, crm_id))
            continue
        if handle:
            handles = {
                h.strip().lstrip("@").lower()
                for h in [twitter or "", *(others or "").replace(";", ",").split(",")]
            }
            if handle in handles:
                found.append((prospect_id, crm_id))
    return found


def _delete_in(
    conn: Connection, report: ForgetReport, table: Table, column: Any, values: Iterable[Any], *where: Any
) -> None:
    """``DELETE FROM table WHERE column IN values [AND where]``, in chunks; counted in ``report``."""
    for part in _chunks(list(values)):
        n = conn.execute(delete(table).where(column.in_(part), *where)).rowcount or 0
        if n:
            report.removed[table.name] = report.removed.get(table.name, 0) + n


def forget_in_warehouse(
    conn: Connection, report: ForgetReport, email: str | None, handle: str | None
) -> tuple[set[str], set[str]]:
    """Remove the person from every table; return their author external ids and handles
    (to find them in files)."""
    authors = _find_authors(conn, email, handle)
    prospects = _find_prospects(conn, email, handle)
    prospect_ids = [p for p, _ in prospects]
    if prospect_ids:
        # Authors matched to that prospect are the same person on other sources.
        matched = conn.execute(
            select(author.c.author_id, author.c.source_id, author.c.external_id, author.c.handle)
            .join(author_match, author_match.c.author_id == author.c.author_id)
            .where(author_match.c.prospect_id.in_(prospect_ids))
        ).all()
        authors = list({a[0]: a for a in [*authors, *(tuple(m) for m in matched)]}.values())
    author_ids = [a[0] for a in authors]
    external_ids = {a[2] for a in authors}
    handles = {a[3] for a in authors if a[3]}

    items: list[tuple[int, int, str]] = []
    for ids in _chunks(author_ids):
        items += [
            tuple(r)
            for r in conn.execute(  # type: ignore[misc]
                select(content_item.c.item_id, content_item.c.source_id, content_item.c.external_id).where(
                    content_item.c.author_id.in_(ids)
                )
            )
        ]
    item_ids = [i[0] for i in items]
    for table in (fct_item_engagement, stage_prediction, label_feedback):
        _delete_in(conn, report, table, table.c.item_id, item_ids)
    for ids in _chunks(item_ids):
        for column in ("referring_item_id", "landing_item_id"):
            conn.execute(update(referral).where(referral.c[column].in_(ids)).values({column: None}))
    obs = engagement_observation.c
    subject = tuple_(obs.source_id, obs.subject_external_id)
    _delete_in(
        conn,
        report,
        engagement_observation,
        subject,
        [(i[1], i[2]) for i in items],
        obs.subject_type == "item",
    )
    _delete_in(
        conn,
        report,
        engagement_observation,
        subject,
        [(a[1], a[2]) for a in authors],
        obs.subject_type == "account",
    )
    _delete_in(conn, report, content_item, content_item.c.item_id, item_ids)

    source_names = dict(conn.execute(select(source.c.source_id, source.c.name)).all())
    mo = match_override.c
    _delete_in(
        conn,
        report,
        match_override,
        tuple_(mo.source_name, mo.author_external_id),
        [(source_names.get(a[1], ""), a[2]) for a in authors],
    )
    _delete_in(conn, report, match_override, mo.prospect_crm_id, [c for _, c in prospects])
    _delete_in(conn, report, author_match, author_match.c.author_id, author_ids)
    _delete_in(conn, report, author_match, author_match.c.prospect_id, prospect_ids)
    _delete_in(conn, report, prospect, prospect.c.prospect_id, prospect_ids)
    _delete_in(conn, report, author, author.c.author_id, author_ids)
    return external_ids, handles


def _needles(email: str | None, handle: str | None, handles: set[str]) -> list[bytes]:
    needles = set()
    if email:
        needles.add(email)
    if handle:
        needles.add(handle)
    needles.update(h.strip().lower() for h in handles if h and len(h.strip().lstrip("@")) >= 3)
    return sorted(n.encode("utf-8") for n in needles)


def _mentions(body: bytes, needles: list[bytes]) -> bool:
    lowered = body.lower()
    return any(n in lowered for n in needles)


def forget_in_files(
    settings: Settings, report: ForgetReport, needles: list[bytes], external_ids: set[str]
) -> None:
    """Remove landed raw responses that mention the person, and their staged records."""
    from engage.raw import LandedResponse

    raw = settings.raw_dir
    if raw.is_dir():
        for meta_path in sorted(raw.glob("*/*/*.json")):
            if meta_path.name == "context.json":
                continue
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                body_path = LandedResponse(meta, meta_path).body_path  # None: a 304
                body = gzip.decompress(body_path.read_bytes()) if body_path and body_path.exists() else b""
            except (OSError, ValueError, KeyError, EOFError) as exc:
                log.warning("forget: cannot read %s (%s); left in place", meta_path, exc)
                continue
            if _mentions(body, needles) or _mentions(json.dumps(meta).encode(), needles):
                if body_path is not None:
                    body_path.unlink(missing_ok=True)
                meta_path.unlink()
                report.files.append(str(meta_path.relative_to(settings.home)))
    staging = settings.staging_dir
    if staging.is_dir():
        for path in sorted(staging.rglob("*.json.gz")):
            try:
                with gzip.open(path, "rt", encoding="utf-8") as fh:
                    data = json.load(fh)
            except (OSError, ValueError, EOFError) as exc:
                log.warning("forget: cannot read staged %s (%s); left in place", path, exc)
                continue
            if not isinstance(data, dict) or not _mentions(json.dumps(data).encode(), needles):
                continue
            _drop_person(data, needles, set(external_ids))
            tmp = path.with_name(path.name + ".tmp")
            with gzip.open(tmp, "wb", compresslevel=1) as fh:
                fh.write(json.dumps(data).encode("utf-8"))  # as the pipeline stages it
            os.replace(tmp, path)
            report.files.append(str(path.relative_to(settings.home)))


def _drop_person(data: dict[str, Any], needles: list[bytes], gone: set[str]) -> None:
    """Take the person's authors, their items and the observations of both out of a staged result."""
    authors = []
    for a in data.get("authors", []):
        if a.get("external_id") in gone or _mentions(json.dumps(a).encode(), needles):
            gone.add(a.get("external_id"))
        else:
            authors.append(a)
    items = [i for i in data.get("items", []) if i.get("author_external_id") not in gone]
    dropped_items = {i.get("external_id") for i in data.get("items", [])} - {
        i.get("external_id") for i in items
    }
    data["observations"] = [
        o for o in data.get("observations", []) if o.get("subject_external_id") not in dropped_items | gone
    ]
    data["authors"], data["items"] = authors, items


def forget(
    settings: Settings, *, engine: Engine, email: str | None = None, handle: str | None = None
) -> ForgetReport:
    """Remove one person everywhere; see the module docstring."""
    if bool(email) == bool(handle):
        raise PrivacyError("name the person by exactly one of --email or --handle")
    email = normalise_email(email) if email else None
    handle = normalise_handle(handle) if handle else None
    kind, identifier = ("email", email) if email else ("handle", handle)
    report = ForgetReport(identifier_kind=kind)
    with engine.begin() as conn:
        external_ids, handles = forget_in_warehouse(conn, report, email, handle)
        forget_in_files(settings, report, _needles(email, handle, handles), external_ids)
        conn.execute(
            insert(privacy_request).values(
                identifier_kind=kind,
                identifier_sha256=hashlib.sha256(f"{kind}:{identifier}".encode()).hexdigest(),
                requested_at=datetime.now(UTC),
                removed_json=json.dumps({"rows": report.removed, "files": len(report.files)}, sort_keys=True),
            )
        )
    for table, n in sorted(report.removed.items()):
        log.info("forget (%s): removed %d row(s) from %s", kind, n, table)
    log.info(
        "forget (%s): removed %d file(s) or staged records under the data directory", kind, len(report.files)
    )
    return report


def anonymise_unmatched(engine: Engine, today: date, keep_days: int) -> int:
    """Remove the profile of people never matched to a prospect and not seen for ``keep_days``."""
    if keep_days <= 0:
        return 0
    cutoff = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=keep_days)
    matched = select(author_match.c.author_id).where(
        or_(author_match.c.prospect_id.is_not(None), author_match.c.account_id.is_not(None))
    )
    with engine.begin() as conn:
        stale = conn.execute(
            select(author.c.author_id, author.c.external_id).where(
                author.c.last_seen_at < cutoff,
                author.c.is_ours.is_(False),
                author.c.author_id.not_in(matched),
                author.c.external_id.not_like(f"{ANONYMOUS_PREFIX}%"),
            )
        ).all()
        for author_id, external_id in stale:
            digest = hashlib.sha256(f"{author_id}:{external_id}".encode()).hexdigest()[:40]
            conn.execute(
                update(author)
                .where(author.c.author_id == author_id)
                .values(
                    external_id=f"{ANONYMOUS_PREFIX}{digest}",
                    handle=None,
                    display_name=None,
                    title=None,
                    bio=None,
                    profile_url=None,
                    email=None,
                )
            )
    if stale:
        log.info(
            "retention: anonymised %d author(s) never matched and not seen since %s",
            len(stale),
            cutoff.date(),
        )
    return len(stale)


def retention_step(
    settings: Settings, config: SourcesConfig, run_date: date, *, engine: Engine | None = None
) -> dict[str, int]:
    """The daily run's last step: raw-data retention, then people never matched."""
    from engage.pipeline import open_warehouse
    from engage.raw import prune_step

    engine = engine or open_warehouse(settings)
    folders = prune_step(settings, config, run_date, engine=engine)
    people = anonymise_unmatched(engine, run_date, settings.unmatched_retention_days)
    return {"raw_folders_removed": folders, "people_anonymised": people}
