"""Data-quality checks on one day, after its load and classification.

Two kinds of finding:

- **error** -- the data is wrong: a duplicated natural key, a null key
  column, a label or item kind outside its domain, an orphaned reference,
  a negative or not-a-number count. The daily run fails loudly.
- **warning** -- something to look at, the data itself is not wrong: a
  source that has not been collected successfully for
  ``ENGAGE_FRESHNESS_DAYS``, a source whose rows for the day fall below
  ``ENGAGE_QUALITY_MIN_RATIO`` of its median over the previous seven days
  that had any (or jump above its inverse). Reported, never failing.

Every check's result (passed or not) is written to ``quality_check`` for
the day; rerunning the day's checks replaces them. The checks only read
the day's rows (and small tables), so their cost does not grow with the
years of history.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select
from sqlalchemy.sql import ColumnElement

from engage.config import SourcesConfig
from engage.errors import DataQualityError
from engage.settings import Settings
from engage.warehouse.db import as_utc, day_bounds
from engage.warehouse.schema import (
    ITEM_KINDS,
    STAGE_LABELS,
    SUBJECT_TYPES,
    author,
    collection_run,
    content_item,
    engagement_observation,
    quality_check,
    source,
    stage_prediction,
)
from models.stage_classifier import UNCERTAIN

log = logging.getLogger(__name__)

HISTORY_DAYS = 7
MIN_MEDIAN_ROWS = 5  # below this a source is too small for a volume check


@dataclass(frozen=True)
class CheckResult:
    check_name: str
    subject: str
    severity: str  # error | warning
    passed: bool
    observed: float | None = None
    expected: float | None = None
    detail: str | None = None

    def describe(self) -> str:
        return f"{self.severity}: {self.check_name} on {self.subject}: {self.detail or 'ok'}"


@dataclass(frozen=True)
class QualityReport:
    day: date
    results: tuple[CheckResult, ...]

    @property
    def errors(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed and r.severity == "error"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed and r.severity == "warning"]


def _count(conn: Connection, stmt: object) -> int:
    return int(conn.execute(stmt).scalar_one() or 0)  # type: ignore[call-overload]


def _error(name: str, subject: str, bad: int, what: str) -> CheckResult:
    return CheckResult(
        name,
        subject,
        "error",
        bad == 0,
        observed=float(bad),
        expected=0.0,
        detail=None if bad == 0 else f"{bad} {what}",
    )


def _day_items(day: date) -> ColumnElement[bool]:
    start, end = day_bounds(day)
    return and_(content_item.c.last_collected_at >= start, content_item.c.last_collected_at < end)


def key_checks(conn: Connection, day: date) -> list[CheckResult]:
    """Uniqueness and not-null of natural keys, domains and references of the day's rows."""
    results = []
    day_items = _day_items(day)
    dup_items = (
        select(content_item.c.source_id, content_item.c.external_id)
        .where(day_items)
        .group_by(content_item.c.source_id, content_item.c.external_id)
        .having(func.count() > 1)
        .subquery()
    )
    results.append(
        _error(
            "unique_key",
            "content_item",
            _count(conn, select(func.count()).select_from(dup_items)),
            "items share a (source, external_id)",
        )
    )
    obs = engagement_observation.c
    dup_obs = (
        select(obs.source_id, obs.subject_type, obs.subject_external_id, obs.metric)
        .where(obs.observed_date == day)
        .group_by(obs.source_id, obs.subject_type, obs.subject_external_id, obs.metric)
        .having(func.count() > 1)
        .subquery()
    )
    results.append(
        _error(
            "unique_key",
            "engagement_observation",
            _count(conn, select(func.count()).select_from(dup_obs)),
            "observations repeat a (source, subject, metric) for the day",
        )
    )
    dup_authors = (
        select(author.c.source_id, author.c.external_id)
        .group_by(author.c.source_id, author.c.external_id)
        .having(func.count() > 1)
        .subquery()
    )
    results.append(
        _error(
            "unique_key",
            "author",
            _count(conn, select(func.count()).select_from(dup_authors)),
            "authors share a (source, external_id)",
        )
    )

    null_keys = or_(
        content_item.c.external_id.is_(None),
        content_item.c.external_id == "",
        content_item.c.kind.is_(None),
        content_item.c.content_hash.is_(None),
    )
    results.append(
        _error(
            "not_null",
            "content_item",
            _count(conn, select(func.count()).where(day_items, null_keys)),
            "items have an empty key column",
        )
    )
    results.append(
        _error(
            "not_null",
            "engagement_observation",
            _count(
                conn,
                select(func.count()).where(
                    obs.observed_date == day,
                    or_(
                        obs.subject_external_id.is_(None),
                        obs.subject_external_id == "",
                        obs.metric.is_(None),
                        obs.metric == "",
                        obs.value.is_(None),
                    ),
                ),
            ),
            "observations have an empty key column or value",
        )
    )

    results.append(
        _error(
            "domain",
            "content_item.kind",
            _count(conn, select(func.count()).where(day_items, content_item.c.kind.not_in(ITEM_KINDS))),
            f"items have a kind outside {', '.join(ITEM_KINDS)}",
        )
    )
    results.append(
        _error(
            "domain",
            "engagement_observation.subject_type",
            _count(
                conn,
                select(func.count()).where(obs.observed_date == day, obs.subject_type.not_in(SUBJECT_TYPES)),
            ),
            f"observations have a subject type outside {', '.join(SUBJECT_TYPES)}",
        )
    )
    # Negative counts are impossible. PostgreSQL stores NaN and compares it
    # equal to itself; SQLite cannot store it (NaN becomes NULL, refused).
    out_of_range = _count(
        conn,
        select(func.count()).where(obs.observed_date == day, or_(obs.value < 0, obs.value == float("nan"))),
    )
    results.append(
        _error(
            "value_range",
            "engagement_observation.value",
            out_of_range,
            "observations are negative or not a number",
        )
    )

    sp = stage_prediction.c
    labels = (*STAGE_LABELS, UNCERTAIN)
    day_predictions = (
        select(sp.label, sp.model_label)
        .join(content_item, content_item.c.item_id == sp.item_id)
        .where(day_items)
        .subquery()
    )
    results.append(
        _error(
            "domain",
            "stage_prediction.label",
            _count(
                conn,
                select(func.count())
                .select_from(day_predictions)
                .where(
                    or_(
                        day_predictions.c.label.not_in(labels),
                        day_predictions.c.model_label.not_in(STAGE_LABELS),
                    )
                ),
            ),
            f"predictions have a label outside {', '.join(labels)}",
        )
    )

    orphan_authors = (
        select(func.count())
        .select_from(content_item.outerjoin(author, author.c.author_id == content_item.c.author_id))
        .where(day_items, content_item.c.author_id.is_not(None), author.c.author_id.is_(None))
    )
    results.append(
        _error(
            "relationship",
            "content_item.author_id",
            _count(conn, orphan_authors),
            "items point to an author that does not exist",
        )
    )
    orphan_predictions = (
        select(func.count())
        .select_from(stage_prediction.outerjoin(content_item, content_item.c.item_id == sp.item_id))
        .where(content_item.c.item_id.is_(None))
    )
    results.append(
        _error(
            "relationship",
            "stage_prediction.item_id",
            _count(conn, orphan_predictions),
            "predictions point to an item that does not exist",
        )
    )
    return results


def source_checks(
    conn: Connection, config: SourcesConfig, day: date, *, freshness_days: int, min_ratio: float
) -> list[CheckResult]:
    """Freshness and the day's row count against the recent days, per enabled source."""
    results = []
    ids = dict(conn.execute(select(source.c.name, source.c.source_id)).all())
    first = day - timedelta(days=HISTORY_DAYS)
    obs = engagement_observation.c
    rows_per_day: dict[int, dict[date, int]] = {}
    for source_id, observed_date, n in conn.execute(
        select(obs.source_id, obs.observed_date, func.count())
        .where(obs.observed_date >= first, obs.observed_date <= day)
        .group_by(obs.source_id, obs.observed_date)
    ):
        rows_per_day.setdefault(source_id, {})[observed_date] = int(n)
    _, day_end = day_bounds(day)
    for src in config.enabled():
        source_id = ids.get(src.name)
        if source_id is None:
            continue
        last_success = conn.execute(
            select(func.max(collection_run.c.finished_at)).where(
                collection_run.c.source_id == source_id,
                collection_run.c.status.in_(("success", "not_modified")),
                collection_run.c.run_date <= day,
            )
        ).scalar_one()
        last_success = as_utc(last_success)
        if last_success is None:
            results.append(
                CheckResult("freshness", src.name, "warning", False, detail="never collected successfully")
            )
        else:
            age = (day_end - last_success).total_seconds() / 86400
            stale = age > freshness_days
            results.append(
                CheckResult(
                    "freshness",
                    src.name,
                    "warning",
                    not stale,
                    observed=round(age, 2),
                    expected=float(freshness_days),
                    detail=f"last successful collection {age:.1f} days ago" if stale else None,
                )
            )

        history = rows_per_day.get(source_id, {})
        today = history.get(day, 0)
        previous = [n for d, n in history.items() if d < day and n > 0]
        if len(previous) < 3:
            continue  # too little history to judge
        median = statistics.median(previous)
        if median < MIN_MEDIAN_ROWS:
            continue
        low, high = min_ratio * median, median / min_ratio
        ok = low <= today <= high
        results.append(
            CheckResult(
                "row_count",
                src.name,
                "warning",
                ok,
                observed=float(today),
                expected=float(median),
                detail=None
                if ok
                else (
                    f"{today} observations today against a median of {median:g} over the previous "
                    f"{len(previous)} days"
                ),
            )
        )
    return results


def check_day(settings: Settings, config: SourcesConfig, day: date, *, engine: Engine) -> QualityReport:
    """Run every check for ``day`` and store the results (replacing the day's)."""
    checked_at = datetime.now(UTC)
    with engine.begin() as conn:
        results = key_checks(conn, day) + source_checks(
            conn, config, day, freshness_days=settings.freshness_days, min_ratio=settings.quality_min_ratio
        )
        conn.execute(delete(quality_check).where(quality_check.c.check_date == day))
        conn.execute(
            insert(quality_check),
            [
                {
                    "check_date": day,
                    "check_name": r.check_name,
                    "subject": r.subject[:200],
                    "severity": r.severity,
                    "passed": r.passed,
                    "observed": r.observed,
                    "expected": r.expected,
                    "detail": r.detail,
                    "checked_at": checked_at,
                }
                for r in _unique(results)
            ],
        )
    report = QualityReport(day, tuple(results))
    for r in report.warnings:
        log.warning("quality %s", r.describe())
    for r in report.errors:
        log.error("quality %s", r.describe())
    return report


def _unique(results: list[CheckResult]) -> list[CheckResult]:
    seen: dict[tuple[str, str], CheckResult] = {}
    for r in results:
        seen.setdefault((r.check_name, r.subject[:200]), r)
    return list(seen.values())


def quality_step(
    settings: Settings, config: SourcesConfig, run_date: date, *, engine: Engine
) -> QualityReport:
    """The daily run's step: check the day, fail loudly on an error, report warnings."""
    report = check_day(settings, config, run_date, engine=engine)
    if report.errors:
        raise DataQualityError(
            f"data-quality checks failed for {run_date}: " + "; ".join(r.describe() for r in report.errors)
        )
    return report
