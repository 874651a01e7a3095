"""Raw landing: every response kept, so a day can be re-parsed without refetching.

Layout, under ``$ENGAGE_HOME/raw/<run date>/<source>/``:

- ``<time>-<n>.json``: one response's metadata -- the URL asked for (with
  its ``params``), the final URL, status, headers, fetch time, elapsed
  seconds, attempts, body size and SHA-256, and the name of its body file
  (``null`` for an empty body, such as a 304's);
- ``<time>-<n>.body.gz``: the body, gzip-compressed (``zcat`` reads it);
- the cursor the source started the day with (ETag, Last-Modified,
  watermark) is in every metadata file as ``context``; the day's earliest
  response has the first attempt's (folders landed before kept it in a
  ``context.json``, which is still read).

A ``304 Not Modified`` has no body and nothing to re-parse: it is landed
only beside other responses of the source-day (a rerun's 304, or a 304 to
one page of a source whose other pages answered). A source whose answers of
the day are all 304 lands nothing -- its ``collection_run`` row records the
status and time -- so a day on which nothing changed creates no files.

The date is the run's logical date, so ``engage reparse --date D`` finds
what the run for D fetched. Files are written to a temporary name and
renamed, the body before its metadata, so a metadata file always has its
body.

``ReplayClient`` has ``HttpClient``'s ``get()`` and answers from those
files: for each URL asked, the latest full answer of the day (a 200 rather
than a later 304 to a rerun), with the same status handling (a landed 404
raises the same ``FetchError``). A URL that was never fetched that day
raises ``NotLanded``. ``reparse_day`` runs the collectors on a ReplayClient
and loads the result like a normal load, except that it leaves the source's
cursor and failure state as they are: a re-parse is not a new collection.

``prune_raw`` removes the day folders older than
``ENGAGE_RAW_RETENTION_DAYS`` (default 90) before a reference date; it runs
after each daily run and as ``engage raw prune``.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from requests.structures import CaseInsensitiveDict
from sqlalchemy import Engine, select, update

from collectors.http import HttpClient, HttpResponse, full_url
from engage.errors import EngageError, FetchError
from engage.files import write_atomic

if TYPE_CHECKING:
    from engage.config import SourceConfig, SourcesConfig
    from engage.settings import Settings

log = logging.getLogger(__name__)

DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CONTEXT_FILE = "context.json"
NOTHING_LANDED_HINT = (
    " (not collected that day, or a source whose answers were all 304 Not Modified lands nothing:"
    " nothing to re-parse)"
)
_sequence = itertools.count()


class RawError(EngageError):
    """Raw data is missing or unreadable; the message names the folder or file."""


class NotLanded(FetchError):
    """A re-parse asked for a URL that was not fetched on that day."""


def day_dir(raw_root: Path, run_date: date) -> Path:
    return raw_root / run_date.isoformat()


def source_dir(raw_root: Path, run_date: date, source_name: str) -> Path:
    return day_dir(raw_root, run_date) / source_name


class RawLanding:
    """``HttpClient.on_response`` hook writing each response under one source's day folder."""

    def __init__(self, raw_root: Path, run_date: date, source_name: str) -> None:
        self.folder = source_dir(raw_root, run_date, source_name)
        self.written = 0
        self.context: dict[str, str | None] | None = None
        self._folder_made = False
        self._held: list[HttpResponse] = []  # 304s, until something else of the day lands

    def set_context(self, etag: str | None, last_modified: str | None, watermark: str | None) -> None:
        """The cursor the source starts from, kept in each response's metadata
        (the day's earliest response has the day's first cursor)."""
        self.context = {"etag": etag, "last_modified": last_modified, "watermark": watermark}

    def __call__(self, resp: HttpResponse) -> None:
        if not self._folder_made:
            if resp.not_modified and not self.folder.is_dir():
                self._held.append(resp)  # nothing of this source-day landed yet
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            self._folder_made = True
            held, self._held = self._held, []
            for earlier in held:
                self._write(earlier)
        self._write(resp)

    def _write(self, resp: HttpResponse) -> None:
        stem = f"{resp.fetched_at.astimezone(UTC):%H%M%S%f}-{os.getpid()}-{next(_sequence):06d}"
        body_name = f"{stem}.body.gz" if resp.body else None  # a 304 has no body to keep
        if body_name is not None:
            write_atomic(self.folder / body_name, gzip.compress(resp.body, compresslevel=5))
        meta = {
            "request_url": resp.request_url or resp.url,
            "params": resp.params,
            "url": resp.url,
            "status": resp.status,
            "headers": dict(resp.headers),
            "fetched_at": resp.fetched_at.astimezone(UTC).isoformat(),
            "elapsed": round(resp.elapsed, 4),
            "attempts": resp.attempts,
            "body": body_name,
            "body_bytes": len(resp.body),
            "sha256": hashlib.sha256(resp.body).hexdigest(),
            "context": self.context,
        }
        write_atomic(self.folder / f"{stem}.json", json.dumps(meta, default=str).encode())
        self.written += 1


@dataclass
class LandedResponse:
    meta: dict[str, Any]
    path: Path  # the metadata file

    @property
    def body_path(self) -> Path | None:
        """The body's file; None for an empty body (a 304)."""
        return self.path.with_name(self.meta["body"]) if self.meta.get("body") else None

    def response(self) -> HttpResponse:
        body = b""
        body_path = self.body_path
        if body_path is not None:
            try:
                body = gzip.decompress(body_path.read_bytes())
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise RawError(f"{body_path}: cannot read the landed body: {exc}") from exc
        return HttpResponse(
            url=self.meta["url"],
            status=int(self.meta["status"]),
            headers=CaseInsensitiveDict(self.meta.get("headers") or {}),
            body=body,
            fetched_at=datetime.fromisoformat(self.meta["fetched_at"]),
            elapsed=0.0,
            attempts=int(self.meta.get("attempts", 1)),
        )


def read_landed(folder: Path) -> list[LandedResponse]:
    """A source-day's landed responses, oldest first."""
    if not folder.is_dir():
        raise RawError(f"{folder}: no raw responses landed here")
    landed = []
    for path in sorted(folder.glob("*.json")):
        if path.name == CONTEXT_FILE:
            continue
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RawError(f"{path}: unreadable raw metadata: {exc}") from exc
        landed.append(LandedResponse(meta, path))
    landed.sort(key=lambda r: (r.meta.get("fetched_at", ""), r.path.name))
    return landed


def read_context(folder: Path, landed: list[LandedResponse] | None = None) -> dict[str, str | None]:
    """The cursor the source-day started from: in the earliest response's metadata
    (``context.json`` in folders landed before that). ``landed``: the folder's
    ``read_landed``, when the caller has it already."""
    path = folder / CONTEXT_FILE
    if path.exists():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RawError(f"{path}: unreadable: {exc}") from exc
    if landed is None:
        landed = read_landed(folder) if folder.is_dir() else []
    for response in landed:
        if response.meta.get("context"):
            return dict(response.meta["context"])
    return {"etag": None, "last_modified": None, "watermark": None}


class ReplayClient(HttpClient):
    """``HttpClient`` that answers from the landed responses of one source-day; no network."""

    def __init__(self, folder: Path, **kw: Any) -> None:
        super().__init__(**kw)
        self.folder = folder
        self.requested: list[str] = []
        self.landed = read_landed(folder)
        by_url: dict[str, LandedResponse] = {}
        for landed in self.landed:
            key = landed.meta["request_url"]
            previous = by_url.get(key)
            # A rerun's 304 means "same as before": keep the earlier full answer.
            if previous is None or int(landed.meta["status"]) != 304 or int(previous.meta["status"]) == 304:
                by_url[key] = landed
        self._by_url = by_url

    def _exchange(self, url: str, params: Mapping[str, Any] | None, send: Mapping[str, str]) -> HttpResponse:
        target = full_url(url, params)
        self.requested.append(target)
        landed = self._by_url.get(target)
        if landed is None:
            raise NotLanded(target, f"no response to this URL was landed in {self.folder}")
        return landed.response()


# --- re-parse ---------------------------------------------------------------


@dataclass
class ReparseOutcome:
    source: str
    status: str  # success | not_modified | failed
    responses: int = 0
    authors: int = 0
    items: int = 0
    observations: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def landed_sources(settings: Settings, run_date: date) -> list[str]:
    folder = day_dir(settings.raw_dir, run_date)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def reparse_source(
    settings: Settings, config: SourcesConfig, src: SourceConfig, run_date: date, engine: Engine
) -> ReparseOutcome:
    """Collect ``src`` from its landed responses of ``run_date`` and load the records."""
    from collectors import collector_for
    from collectors.base import CollectContext
    from engage.warehouse.schema import source
    from transforms.load import load_result

    folder = source_dir(settings.raw_dir, run_date, src.name)
    client = ReplayClient(folder, user_agent=settings.user_agent, max_bytes=settings.http_max_bytes)
    cursor = read_context(folder, client.landed)
    try:
        ctx = CollectContext(
            source=src,
            client=client,
            run_date=run_date,
            etag=cursor.get("etag"),
            last_modified=cursor.get("last_modified"),
            watermark=cursor.get("watermark"),
            team=config.team,
        )
        result = collector_for(src.kind)(ctx)
    except Exception as exc:  # noqa: BLE001 - one source's failure is reported, not fatal
        reason = str(exc) if isinstance(exc, EngageError) else f"{type(exc).__name__}: {exc}"
        return ReparseOutcome(src.name, "failed", len(client.requested), error=reason)
    finally:
        client.close()
    kept = [
        source.c.etag,
        source.c.last_modified,
        source.c.watermark,
        source.c.last_success_at,
        source.c.last_error,
        source.c.consecutive_failures,
        source.c.next_attempt_at,
    ]
    with engine.begin() as conn:
        source_id, *state = conn.execute(
            select(source.c.source_id, *kept).where(source.c.name == src.name)
        ).one()
        collected_at = min(
            (datetime.fromisoformat(r.meta["fetched_at"]) for r in client.landed),
            default=datetime.now(UTC),
        )
        counts = load_result(
            conn,
            source_id=source_id,
            run_date=run_date,
            result=result,
            collected_at=collected_at,
            own_source=src.own,
            team=config.team,
        )
        # The source's cursor belongs to its latest collection, not to this re-parse.
        conn.execute(
            update(source)
            .where(source.c.source_id == source_id)
            .values({column.name: value for column, value in zip(kept, state, strict=True)})
        )
    return ReparseOutcome(
        src.name,
        "not_modified" if result.not_modified else "success",
        len(client.requested),
        counts.authors,
        counts.items,
        counts.observations,
        warnings=result.warnings,
    )


def reparse_day(
    settings: Settings,
    config: SourcesConfig,
    run_date: date,
    *,
    names: Iterable[str] = (),
    engine: Engine | None = None,
) -> list[ReparseOutcome]:
    """Re-parse the landed responses of ``run_date`` (all sources that have some, or ``names``)."""
    from engage.pipeline import open_warehouse, sync_sources

    wanted = list(names)
    available = landed_sources(settings, run_date)
    if wanted:
        chosen = [config.get(n) for n in wanted]
        missing = [s.name for s in chosen if s.name not in available]
        if missing:
            raise RawError(
                f"{day_dir(settings.raw_dir, run_date)}: no raw responses for "
                f"{', '.join(map(repr, missing))} on {run_date}{NOTHING_LANDED_HINT}"
            )
    else:
        if not available:
            raise RawError(
                f"{day_dir(settings.raw_dir, run_date)}: no raw responses for {run_date}{NOTHING_LANDED_HINT}"
            )
        configured = {s.name for s in config.sources}
        for name in available:
            if name not in configured:
                log.warning(
                    "raw data of %s on %s: no such source in %s, skipped", name, run_date, config.path
                )
        chosen = [s for s in config.sources if s.name in available]
    engine = engine or open_warehouse(settings)
    sync_sources(engine, config)
    return [reparse_source(settings, config, src, run_date, engine) for src in chosen]


# --- retention ----------------------------------------------------------------


def prune_raw(raw_root: Path, today: date, keep_days: int) -> list[Path]:
    """Remove day folders more than ``keep_days`` days before ``today``; return them.

    Only folders named like a date are touched; anything else under
    ``raw_root`` is left alone.
    """
    if keep_days < 0:
        raise RawError(f"raw retention must be zero or more days, not {keep_days}")
    if not raw_root.is_dir():
        return []
    oldest_kept = today - timedelta(days=keep_days)
    removed = []
    for folder in sorted(raw_root.iterdir()):
        if not folder.is_dir() or folder.is_symlink() or not DAY_RE.match(folder.name):
            continue
        try:
            day = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if day < oldest_kept:
            shutil.rmtree(folder)
            removed.append(folder)
    return removed


def prune_step(
    settings: Settings, config: SourcesConfig, run_date: date, *, engine: Engine | None = None
) -> int:
    """The daily run's last step: apply the raw retention relative to the run's date,
    and drop robots.txt copies of hosts no longer collected."""
    from collectors.politeness import ROBOTS_UNUSED_DAYS, RobotsCache

    removed = prune_raw(settings.raw_dir, run_date, settings.raw_retention_days)
    for folder in removed:
        log.info("raw data removed (older than %d days): %s", settings.raw_retention_days, folder)
    cache = RobotsCache(settings.robots_cache_dir, timedelta(hours=settings.robots_cache_hours))
    stale = cache.prune(timedelta(days=ROBOTS_UNUSED_DAYS))
    if stale:
        log.info("%d robots.txt copies not refreshed for %d days removed", len(stale), ROBOTS_UNUSED_DAYS)
    return len(removed)
