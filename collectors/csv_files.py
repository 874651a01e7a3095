"""CSV exports of platforms without an open API, dropped as files.

The source's ``url`` is a file: a path (relative to the sources file's
folder, or absolute), a ``file://`` URL, a glob pattern
(``exports/linkedin-*.csv``: every matching file, in name order) or an
http(s) URL (fetched through the shared HTTP module). ``format`` says how
to read it:

- ``linkedin_followers``: a LinkedIn page's follower export ("New
  followers": ``Date``, ``Sponsored followers``, ``Organic followers``,
  ``Auto-invited followers``, ``Total followers`` -- followers gained per
  day) -> account observations ``new_followers`` (and ``_sponsored``,
  ``_organic``, ``_auto_invited``), each on the export's own day;
- ``x_analytics``: an X (Twitter) analytics tweet activity export (``Tweet
  id``, ``Tweet permalink``, ``Tweet text``, ``time``, ``impressions``,
  ``engagements``, ``retweets``, ``replies``, ``likes``, ``url clicks``...)
  -> our posts, and their counts observed on the run's day;
- ``web_referrers``: a web-analytics referrer export (GA4 "Session source /
  medium", landing page, sessions, date) -> rows of the ``referral`` table,
  read with ``transforms.referrals`` exactly as ``engage referrals import``;
- ``custom``: ``columns:`` maps warehouse fields to the file's headers;
  ``date_format`` (strptime) reads its dates.

Files are bounded (``max_bytes``, default 20 MB each; at most
``MAX_FILES`` files a source) and decoded from UTF-8 (with or without BOM),
UTF-16 (by its BOM, or by its NUL bytes) or, failing UTF-8, Windows-1252;
the delimiter (``,`` ``;`` tab ``|``) is sniffed. Leading ``#`` comment lines
(GA4 puts the report's name and dates there) are skipped. Numbers may carry
thousands separators (``1,234``, ``1.234`` or ``1 234``) and a ``%``.

Bad input -- a missing required column, a date or number that cannot be
read -- is a ``CsvError`` naming the file, the line and the column. With a
glob, a broken file is skipped with a warning and the others are loaded;
a single file, or every file, broken fails the source. Reloading the same
file never duplicates: items are keyed by their id, observations by
subject, metric and day, referrals by day and referral key.
"""

from __future__ import annotations

import codecs
import csv
import glob
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from collectors.base import CollectContext
from collectors.common import clean_reason
from collectors.records import (
    MAX_TEXT,
    MAX_TITLE,
    AuthorRecord,
    CollectResult,
    ItemRecord,
    ObservationRecord,
    bounded_id,
    clip,
)
from engage.errors import ConfigError, FetchError, ParseError

DEFAULT_MAX_BYTES = 20_000_000
MAX_FILES = 100
MAX_ROWS = 200_000
ITEM_FIELDS = ("id", "title", "text", "url", "published_at", "author")
DELIMITERS = ",;\t|"
FORMATS = ("linkedin_followers", "x_analytics", "web_referrers", "custom")
_METRIC = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

csv.field_size_limit(1_000_000)


class CsvError(ParseError):
    """An export could not be read; the message names the file, line and column."""


@dataclass(frozen=True)
class Preset:
    """How one export format maps to records: header -> field, dates, required headers."""

    columns: dict[str, str]  # warehouse field (or metric) <- header
    required: tuple[str, ...]
    date_formats: tuple[str, ...] = ()
    subject: str = "item"  # item: rows are posts; account: rows are days


# LinkedIn page analytics, "Followers" export, "New followers" sheet saved as CSV.
LINKEDIN_FOLLOWERS = Preset(
    columns={
        "date": "Date",
        "new_followers_sponsored": "Sponsored followers",
        "new_followers_organic": "Organic followers",
        "new_followers_auto_invited": "Auto-invited followers",
        "new_followers": "Total followers",
    },
    required=("date", "new_followers"),
    date_formats=("%m/%d/%Y", "%Y-%m-%d", "%d/%m/%Y"),
    subject="account",
)
# X (Twitter) analytics, "Tweet activity" export (by tweet).
X_ANALYTICS = Preset(
    columns={
        "id": "Tweet id",
        "url": "Tweet permalink",
        "text": "Tweet text",
        "published_at": "time",
        "impressions": "impressions",
        "engagements": "engagements",
        "reposts": "retweets",
        "replies": "replies",
        "likes": "likes",
        "profile_clicks": "user profile clicks",
        "url_clicks": "url clicks",
        "follows": "follows",
        "media_views": "media views",
    },
    required=("id", "published_at"),
    date_formats=("%Y-%m-%d %H:%M %z", "%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S%z"),
)


@dataclass
class Table:
    """A decoded export: its header and its ``(line number, row)`` records."""

    name: str
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]
    warnings: list[str] = field(default_factory=list)


def decode(data: bytes, *, name: str) -> tuple[str, str | None]:
    """The text of an export and a warning, if the encoding had to be guessed."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(codec), None
            except UnicodeDecodeError as exc:
                raise CsvError(f"{name}: not valid {codec} after its byte-order mark: {exc.reason}") from None
    sample = data[:1000]
    if sample and sample.count(0) > len(sample) // 4:  # UTF-16 without a BOM
        codec = "utf-16-le" if sample[1::2].count(0) > sample[::2].count(0) else "utf-16-be"
        try:
            return data.decode(codec), None
        except UnicodeDecodeError as exc:
            raise CsvError(f"{name}: looks like UTF-16 but is not: {exc.reason}") from None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), f"{name}: not UTF-8, read as Windows-1252"


def read_table(data: bytes, *, name: str) -> Table:
    """Header and rows of one export, with each row's line number in the file."""
    text, warning = decode(data, name=name)
    lines = text.splitlines(keepends=True)
    skipped = 0
    while skipped < len(lines) and (lines[skipped].lstrip().startswith("#") or not lines[skipped].strip()):
        skipped += 1
    body = "".join(lines[skipped:])
    if not body.strip():
        raise CsvError(f"{name}: no header row (the file is empty)")
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=_delimiter(body))
    try:
        header = [h.strip() for h in next(reader)]
        rows: list[tuple[int, dict[str, str]]] = []
        consumed = reader.line_num  # physical lines read so far (a quoted cell may span lines)
        for record in reader:
            line = skipped + consumed + 1  # the line the record starts on, 1-based
            consumed = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) >= MAX_ROWS:
                raise CsvError(f"{name}: more than {MAX_ROWS} rows")
            rows.append((line, dict(zip(header, record, strict=False))))
    except csv.Error as exc:
        raise CsvError(f"{name}:{skipped + reader.line_num}: not readable as CSV: {exc}") from None
    return Table(name=name, header=header, rows=rows, warnings=[warning] if warning else [])


def _delimiter(body: str) -> str:
    """The delimiter csv.Sniffer finds, if the header line has it; else the candidate
    the header line has most of (the sniffer can be fooled by quoted text)."""
    header = body.lstrip().split("\n", 1)[0]
    counts = {d: header.count(d) for d in DELIMITERS}
    try:
        sniffed = csv.Sniffer().sniff(body[:20_000], delimiters=DELIMITERS).delimiter
    except csv.Error:
        sniffed = None
    if sniffed and counts.get(sniffed):
        return sniffed
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def parse_number(value: str) -> float | None:
    """A count or rate from an export: ``1,234``, ``1.234`` (thousands), ``1 234``,
    ``12.5``, ``12,5`` (decimal comma), ``4%``; None for an empty cell or ``-``."""
    text = value.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "").rstrip("%")
    if text in ("", "-", "--", "n/a", "N/A"):
        return None
    if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    elif re.fullmatch(r"[-+]?\d{1,3}(\.\d{3})+(,\d+)?", text):
        text = text.replace(".", "").replace(",", ".")
    elif re.fullmatch(r"[-+]?\d+,\d+", text):
        text = text.replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a number")
    return number


def parse_when(value: str, formats: tuple[str, ...]) -> datetime:
    """A date or time from an export, by ``formats`` first, then ISO 8601; aware UTC."""
    text = value.strip()
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        expected = " or ".join(formats) if formats else "ISO 8601"
        raise ValueError(f"{value!r} is not a date ({expected})") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _columns(table: Table, preset: Preset) -> dict[str, str]:
    """Field -> the file's own header (matched ignoring case and spaces around);
    a required one missing is a CsvError listing what the file has."""
    by_lower = {h.strip().lower(): h for h in table.header if h}
    found = {}
    for field_name, header in preset.columns.items():
        actual = by_lower.get(header.strip().lower())
        if actual is not None:
            found[field_name] = actual
    missing = [preset.columns[f] for f in preset.required if f not in found]
    if missing:
        raise CsvError(
            f"{table.name}:1: missing column(s) {', '.join(repr(m) for m in missing)} "
            f"(the header has: {clean_reason(', '.join(table.header))})"
        )
    return found


def table_records(table: Table, preset: Preset, *, account: str) -> CollectResult:
    """Items and observations from one decoded export (a pure function)."""
    columns = _columns(table, preset)
    result = CollectResult(warnings=list(table.warnings))
    metrics = [f for f in columns if f not in (*ITEM_FIELDS, "date")]
    authors: dict[str, AuthorRecord] = {}
    seen: set[str] = set()
    for line, row in table.rows:

        def cell(field_name: str, row: dict[str, str] = row) -> str:
            return (row.get(columns[field_name]) or "").strip() if field_name in columns else ""

        def fail(field_name: str, problem: str, line: int = line) -> CsvError:
            return CsvError(f"{table.name}:{line}: column {columns[field_name]!r}: {clean_reason(problem)}")

        day: str | None = None
        if "date" in columns:
            try:
                day = parse_when(cell("date"), preset.date_formats).date().isoformat()
            except ValueError as exc:
                raise fail("date", str(exc)) from None
        values: dict[str, float] = {}
        for metric in metrics:
            try:
                number = parse_number(cell(metric))
            except ValueError as exc:
                raise fail(metric, str(exc)) from None
            if number is not None:
                values[metric] = number
        if preset.subject == "account":
            for metric, number in values.items():
                result.observations.append(
                    ObservationRecord("account", account, metric, number, observed_date=day)
                )
            continue
        external_id = cell("id")
        if not external_id:
            raise fail("id", "empty id")
        external_id = bounded_id(external_id)
        published = None
        if cell("published_at"):
            try:
                published = parse_when(cell("published_at"), preset.date_formats)
            except ValueError as exc:
                raise fail("published_at", str(exc)) from None
        author_id = None
        if cell("author"):
            author_id = bounded_id(cell("author"))
            authors.setdefault(
                author_id, AuthorRecord(external_id=author_id, display_name=clip(cell("author"), MAX_TITLE))
            )
        if external_id not in seen:
            seen.add(external_id)
            result.items.append(
                ItemRecord(
                    external_id=external_id,
                    kind="post",
                    title=clip(cell("title"), MAX_TITLE) or None,
                    text=clip(cell("text"), MAX_TEXT) or None,
                    url=clip(cell("url"), 2_000) or None,
                    published_at=published,
                    author_external_id=author_id,
                    thread_external_id=external_id,
                )
            )
        for metric, number in values.items():
            result.observations.append(
                ObservationRecord("item", external_id, metric, number, observed_date=day)
            )
    result.authors = list(authors.values())
    return result


def custom_preset(ctx: CollectContext) -> Preset:
    """The ``custom`` format's preset from ``columns`` and ``date_format``."""
    where = f"source {ctx.source.name!r}"
    columns = ctx.option("columns")
    if not isinstance(columns, dict) or not columns:
        raise ConfigError(f"{where}: format 'custom' needs 'columns' (warehouse field: CSV header)")
    for key, header in columns.items():
        if not isinstance(key, str) or not isinstance(header, str) or not header.strip():
            raise ConfigError(
                f"{where}, field 'columns': {key!r}: {header!r} must map a field name to a header"
            )
        if key not in (*ITEM_FIELDS, "date") and not _METRIC.match(key):
            raise ConfigError(
                f"{where}, field 'columns': {key!r} is neither a field ({', '.join((*ITEM_FIELDS, 'date'))}) "
                "nor a metric name (lower-case letters, digits, '_')"
            )
    if "id" not in columns and "date" not in columns:
        raise ConfigError(
            f"{where}, field 'columns': needs 'id' (rows are posts) or 'date' (rows are days of the account)"
        )
    fmt = ctx.option("date_format")
    return Preset(
        columns=dict(columns),
        required=tuple(columns),
        date_formats=(fmt,) if fmt else (),
        subject="item" if "id" in columns else "account",
    )


SOURCE_MEDIUM = ("session source / medium", "source / medium", "first user source / medium")


def _referral_result(table: Table, ctx: CollectContext) -> CollectResult:
    """Referral rows, read by ``transforms.referrals.referral_rows`` after three
    GA4 adjustments: a "Session source / medium" column is split in two, a
    ``referral`` medium makes its source the referrer (when the export has no
    referrer column), and sessions may carry thousands separators."""
    from transforms.referrals import COLUMNS, ReferralImportError, referral_rows

    header = list(table.header)
    lowered = {h.lower(): h for h in header}
    rows = [(line, dict(row)) for line, row in table.rows]
    combined = next((lowered[n] for n in SOURCE_MEDIUM if n in lowered), None)
    if combined and "session source" not in lowered:
        has_referrer = any(n in lowered for n in COLUMNS["referrer"])
        header += ["Session source", "Session medium"] + ([] if has_referrer else ["Referrer"])
        for _, row in rows:
            source, _, medium = (row.get(combined) or "").partition(" / ")
            row["Session source"], row["Session medium"] = source.strip(), medium.strip()
            if not has_referrer:
                row["Referrer"] = source.strip() if medium.strip() == "referral" else ""
    sessions = next((lowered[n] for n in COLUMNS["sessions"] if n in lowered), None)
    if sessions:
        for line, row in rows:
            try:
                number = parse_number(row.get(sessions) or "")
            except ValueError as exc:
                raise CsvError(
                    f"{table.name}:{line}: column {sessions!r}: {clean_reason(str(exc))}"
                ) from None
            row[sessions] = str(int(number)) if number is not None else ""
    try:
        found = referral_rows(
            header, rows, where=table.name, imported_from=Path(table.name).name, site=ctx.option("site")
        )
    except ReferralImportError as exc:
        raise CsvError(str(exc)) from None
    for row in found:
        row["referral_date"] = row["referral_date"].isoformat()
    return CollectResult(referrals=found, warnings=list(table.warnings))


def _files(ctx: CollectContext) -> tuple[list[str], bool]:
    """The local files a source names, and whether it was a glob pattern."""
    url = ctx.source.url
    parts = urlsplit(url)
    path = unquote(parts.path) if parts.scheme == "file" else url
    path = str(Path(path).expanduser())
    if glob.has_magic(path):
        return sorted(glob.glob(path)), True
    return [path], False


def _read_local(name: str, max_bytes: int) -> bytes:
    try:
        size = Path(name).stat().st_size
        if size > max_bytes:
            raise CsvError(f"{name}: {size} bytes, more than max_bytes={max_bytes}")
        with open(name, "rb") as fh:
            return fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise FetchError(name, "file not found") from None
    except OSError as exc:
        raise FetchError(name, f"cannot read the file: {exc.strerror or exc}") from None


def _exports(ctx: CollectContext, max_bytes: int) -> Iterator[tuple[str, bytes | Exception]]:
    """Each export of the source: its name and bytes (or why it could not be read)."""
    if urlsplit(ctx.source.url).scheme in ("http", "https"):
        resp = ctx.client.get(ctx.source.url, ok_statuses=(200,))
        yield (
            resp.url,
            resp.body
            if len(resp.body) <= max_bytes
            else CsvError(f"{resp.url}: more than max_bytes={max_bytes}"),
        )
        return
    names, _ = _files(ctx)
    for name in names[:MAX_FILES]:
        try:
            yield name, _read_local(name, max_bytes)
        except (CsvError, FetchError) as exc:
            yield name, exc


def collect(ctx: CollectContext) -> CollectResult:
    fmt = ctx.option("format")
    name = ctx.source.name
    if fmt not in FORMATS:
        raise ConfigError(f"source {name!r}, field 'format': {fmt!r} is not one of {', '.join(FORMATS)}")
    account = str(ctx.option("account") or name)
    make: Callable[[Table], CollectResult]
    if fmt == "web_referrers":

        def make(table: Table) -> CollectResult:
            return _referral_result(table, ctx)

    else:
        preset = {"linkedin_followers": LINKEDIN_FOLLOWERS, "x_analytics": X_ANALYTICS}.get(
            fmt
        ) or custom_preset(ctx)
        if ctx.option("date_format") and fmt != "custom":
            preset = Preset(
                preset.columns,
                preset.required,
                (ctx.option("date_format"), *preset.date_formats),
                preset.subject,
            )

        def make(table: Table) -> CollectResult:
            return table_records(table, preset, account=account)

    max_bytes = int(ctx.option("max_bytes", DEFAULT_MAX_BYTES))
    result = CollectResult()
    names, is_glob = ([], False) if urlsplit(ctx.source.url).scheme in ("http", "https") else _files(ctx)
    if is_glob and not names:
        result.warnings.append(f"no file matches {ctx.source.url}")
        return result
    if len(names) > MAX_FILES:
        result.warnings.append(f"{len(names)} files match, read the first {MAX_FILES}")
    loaded, failures = 0, []
    for file_name, data in _exports(ctx, max_bytes):
        try:
            if isinstance(data, Exception):
                raise data
            part = make(read_table(data, name=file_name))
        except (CsvError, FetchError) as exc:
            if not is_glob:
                raise
            failures.append(exc)
            result.warnings.append(f"skipped: {exc}")
            continue
        loaded += 1
        result.items.extend(part.items)
        result.authors.extend(part.authors)
        result.observations.extend(part.observations)
        result.referrals.extend(part.referrals)
        result.warnings.extend(part.warnings)
    if failures and not loaded:
        raise failures[0]
    _dedupe(result)
    return result


def _dedupe(result: CollectResult) -> None:
    """One item per id and one observation per subject, metric and day, across files
    (a later file, e.g. a newer export, wins)."""
    items = {i.external_id: i for i in result.items}
    result.items = list(items.values())
    authors = {a.external_id: a for a in result.authors}
    result.authors = list(authors.values())
    obs = {(o.subject_type, o.subject_external_id, o.metric, o.observed_date): o for o in result.observations}
    result.observations = list(obs.values())
    # The same day and referral in two exports (overlapping periods): the later file's.
    referrals = {(r["referral_date"], r["referral_key"]): r for r in result.referrals}
    result.referrals = list(referrals.values())
