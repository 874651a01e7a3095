"""Referrals to our content: parse, normalise, attribute.

Input: a web-analytics export (CSV) of visits, one row per referrer and
landing page per day, with a session count. UTM parameters come from the
landing URL's query string or from their own columns (GA4's "Session
source / medium / campaign"). URLs are normalised (lower-case host without
``www.``, no fragment, no tracking parameters, sorted query, no trailing
slash) so the same page always has the same key.

Attribution:
- ``landing_item_id``: our own content item whose URL is the landing page;
- ``referring_item_id``: a collected item whose URL is the referrer (a
  forum post or social post that linked to us);
- ``source_id``: the configured source whose host is the referrer's host.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import Connection, Engine, select

from engage.errors import EngageError
from engage.warehouse.db import upsert
from engage.warehouse.schema import content_item, referral, source

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
TRACKING_KEYS = frozenset(
    {*UTM_KEYS, "fbclid", "gclid", "msclkid", "mc_cid", "mc_eid", "_hsenc", "_hsmi", "ref", "igshid"}
)
MAX_URL = 2_000

COLUMNS: dict[str, tuple[str, ...]] = {
    "date": ("date", "day", "referral_date"),
    "referrer": (
        "referrer",
        "full referrer",
        "page referrer",
        "referrer url",
        "referring url",
        "referrer_url",
    ),
    "landing": (
        "landing page",
        "landing page + query string",
        "landing_url",
        "landing url",
        "page",
        "page location",
    ),
    "sessions": ("sessions", "visits", "users", "count"),
    "utm_source": ("utm_source", "session source", "source"),
    "utm_medium": ("utm_medium", "session medium", "medium"),
    "utm_campaign": ("utm_campaign", "session campaign", "campaign"),
    "utm_term": ("utm_term", "term"),
    "utm_content": ("utm_content", "content"),
}


class ReferralImportError(EngageError):
    """A referrals export could not be read; the message names the file and row."""


def normalise_url(url: str | None, base: str | None = None) -> str | None:
    """A canonical form of a URL for matching (tracking parameters removed)."""
    url = (url or "").strip()
    if not url or url in ("(direct)", "(none)", "(not set)"):
        return None
    if url.startswith("/") and base:
        url = base.rstrip("/") + url
    if "//" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    if not host:
        return None
    port = f":{parts.port}" if parts.port and parts.port not in (80, 443) else ""
    query = urlencode(
        sorted(
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() not in TRACKING_KEYS
        )
    )
    path = parts.path.rstrip("/") or ""
    return urlunsplit(("https", host + port, path, query, ""))[:MAX_URL]


def utm_params(url: str | None) -> dict[str, str | None]:
    query = dict((k.lower(), v) for k, v in parse_qsl(urlsplit(url or "").query))
    return {k: (query.get(k) or None) for k in UTM_KEYS}


@dataclass(frozen=True)
class ParsedReferral:
    referrer_url: str | None
    referrer_host: str | None
    landing_url: str
    landing_path: str
    utm: dict[str, str | None]

    @property
    def key(self) -> str:
        basis = "\x1f".join(
            [self.referrer_url or "", self.landing_url, *[self.utm[k] or "" for k in UTM_KEYS]]
        )
        return hashlib.sha256(basis.encode("utf-8")).hexdigest()


def parse_referral(
    referrer: str | None, landing: str, *, utm: dict[str, str | None] | None = None, base: str | None = None
) -> ParsedReferral:
    landing_norm = normalise_url(landing, base)
    if landing_norm is None:
        raise ReferralImportError(f"landing URL {landing!r} is not a URL")
    from_url = utm_params(landing if "//" in landing else (base or "") + landing)
    merged = {k: (from_url.get(k) or (utm or {}).get(k) or None) for k in UTM_KEYS}
    referrer_norm = normalise_url(referrer)
    return ParsedReferral(
        referrer_url=referrer_norm,
        referrer_host=urlsplit(referrer_norm).hostname if referrer_norm else None,
        landing_url=landing_norm,
        landing_path=urlsplit(landing_norm).path or "/",
        utm=merged,
    )


def import_referrals(engine: Engine, path: Path, *, site: str | None = None) -> int:
    """Load a referrals CSV; rows of the same day, referrer, landing page and UTM are summed."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReferralImportError(f"{path}: cannot read the referrals export: {exc}") from exc
    rows = referral_rows(
        header, enumerate(records, start=2), where=str(path), imported_from=path.name, site=site
    )
    attribute(engine, rows)
    with engine.begin() as conn:
        upsert(conn, referral, rows, key=["referral_date", "referral_key"])
    return len(rows)


def referral_rows(
    header: list[str],
    records: Iterable[tuple[int, dict[str, str]]],
    *,
    where: str,
    imported_from: str,
    site: str | None = None,
) -> list[dict[str, Any]]:
    """Referral rows from the ``(line number, record)`` pairs of an export whose
    columns are ``header``; errors name ``where`` and the line."""
    columns: dict[str, str] = {}
    lowered = {n.strip().lower(): n for n in header if n}
    for field, names in COLUMNS.items():
        for candidate in names:
            if candidate in lowered:
                columns[field] = lowered[candidate]
                break
    for needed in ("date", "landing"):
        if needed not in columns:
            raise ReferralImportError(
                f"{where}: needs a {needed!r} column (accepted: {', '.join(COLUMNS[needed])})"
            )
    rows: dict[tuple[date, str], dict[str, Any]] = {}
    for number, record in records:

        def get(field: str, record: dict[str, str] = record) -> str | None:
            name = columns.get(field)
            value = (record.get(name) or "").strip() if name else ""
            return value or None

        raw_date = get("date") or ""
        try:
            day = (
                date.fromisoformat(raw_date)
                if "-" in raw_date
                else date(int(raw_date[:4]), int(raw_date[4:6]), int(raw_date[6:8]))
            )
        except ValueError:
            raise ReferralImportError(
                f"{where}:{number}: column {columns['date']!r}: date {raw_date!r} is not YYYY-MM-DD or YYYYMMDD"
            ) from None
        try:
            parsed = parse_referral(
                get("referrer"), get("landing") or "", utm={k: get(k) for k in UTM_KEYS}, base=site
            )
        except ReferralImportError as exc:
            raise ReferralImportError(f"{where}:{number}: column {columns['landing']!r}: {exc}") from None
        sessions_text = (get("sessions") or "1").replace(",", "")
        if not sessions_text.isdigit():
            raise ReferralImportError(
                f"{where}:{number}: column {columns.get('sessions')!r}: sessions {sessions_text!r} is not a whole number"
            )
        key = (day, parsed.key)
        if key in rows:
            rows[key]["sessions"] += int(sessions_text)
            continue
        rows[key] = {
            "referral_date": day,
            "referral_key": parsed.key,
            "referrer_url": parsed.referrer_url,
            "referrer_host": parsed.referrer_host,
            "landing_url": parsed.landing_url,
            "landing_path": parsed.landing_path,
            **parsed.utm,
            "sessions": int(sessions_text),
            "imported_from": imported_from[:200],
        }
    return list(rows.values())


def store_referrals(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Attribute and upsert referral rows inside the caller's transaction (the
    daily load of a ``csv`` source with ``format: web_referrers``)."""
    if not rows:
        return 0
    rows = [{**r, "referral_date": date.fromisoformat(str(r["referral_date"]))} for r in rows]
    attribute_with(conn, rows)
    return upsert(conn, referral, rows, key=["referral_date", "referral_key"])


def attribute(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Fill landing_item_id, referring_item_id and source_id on referral rows."""
    with engine.connect() as conn:
        attribute_with(conn, rows)


def attribute_with(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """``attribute`` on an open connection."""
    items: dict[str, tuple[int, bool]] = {}
    for r in conn.execute(
        select(content_item.c.item_id, content_item.c.url, content_item.c.is_ours).where(
            content_item.c.url.is_not(None)
        )
    ):
        norm = normalise_url(r.url)
        if norm and (norm not in items or r.is_ours):
            items[norm] = (r.item_id, bool(r.is_ours))
    hosts = {}
    for r in conn.execute(select(source.c.source_id, source.c.url)):
        host = (urlsplit(r.url).hostname or "").lower().removeprefix("www.")
        if host:
            hosts.setdefault(host, r.source_id)
    for row in rows:
        landing = items.get(row["landing_url"])
        row["landing_item_id"] = landing[0] if landing and landing[1] else None
        referring = items.get(row["referrer_url"] or "")
        row["referring_item_id"] = referring[0] if referring else None
        row["source_id"] = hosts.get(row["referrer_host"] or "")
