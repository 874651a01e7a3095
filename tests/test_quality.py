"""Data-quality checks on known days, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, insert, select, update

from engage.config import load_sources
from engage.errors import DataQualityError
from engage.settings import Settings
from engage.warehouse.schema import (
    collection_run,
    engagement_observation,
    quality_check,
    source,
    stage_prediction,
)
from tests.test_facts import DAY, T, build_day
from transforms.quality import check_day, quality_step


def _setup(engine: Engine, tmp_path: Path) -> tuple[Settings, object]:
    ids = build_day(engine, tmp_path)
    sources = tmp_path / "sources.yml"
    sources.write_text(
        "sources:\n"
        "  - {name: forum, kind: discourse, url: 'https://community.example.com'}\n"
        "  - {name: mastodon, kind: mastodon, url: 'https://mastodon.example', account: acme}\n"
    )
    with engine.begin() as conn:
        for source_id in ids.values():
            conn.execute(
                insert(collection_run).values(
                    source_id=source_id,
                    run_date=DAY,
                    started_at=T + timedelta(hours=1),
                    finished_at=T + timedelta(hours=1, minutes=1),
                    status="success",
                    items=3,
                )
            )
    settings = Settings(home=tmp_path / "home", warehouse_url=str(engine.url), sources_path=sources)
    return settings, load_sources(sources)


def test_a_good_day_passes_and_rerunning_replaces_its_results(engine: Engine, tmp_path: Path) -> None:
    settings, config = _setup(engine, tmp_path)
    report = quality_step(settings, config, DAY, engine=engine)
    assert report.errors == [] and report.warnings == []
    names = {r.check_name for r in report.results}
    assert {"unique_key", "not_null", "domain", "value_range", "relationship", "freshness"} <= names
    quality_step(settings, config, DAY, engine=engine)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(quality_check)).scalar_one()
        failed = conn.execute(select(func.count()).where(quality_check.c.passed.is_(False))).scalar_one()
    assert stored == len(report.results) and failed == 0


def test_a_label_outside_the_domain_and_a_negative_count_fail_the_run(engine: Engine, tmp_path: Path) -> None:
    settings, config = _setup(engine, tmp_path)
    with engine.begin() as conn:
        conn.execute(
            update(stage_prediction).where(stage_prediction.c.label == "decision").values(label="purchase")
        )
        forum = conn.execute(select(source.c.source_id).where(source.c.name == "forum")).scalar_one()
        conn.execute(
            insert(engagement_observation).values(
                source_id=forum,
                subject_type="item",
                subject_external_id="r1",
                metric="likes",
                value=-3,
                observed_at=T + timedelta(hours=20),
                observed_date=DAY,
            )
        )
    with pytest.raises(DataQualityError) as caught:
        quality_step(settings, config, DAY, engine=engine)
    message = str(caught.value)
    assert "stage_prediction.label" in message and "1 predictions have a label outside" in message
    assert "engagement_observation.value" in message and "negative" in message
    with engine.connect() as conn:  # the findings are stored even though the step failed
        failed = set(
            conn.execute(select(quality_check.c.subject).where(quality_check.c.passed.is_(False))).scalars()
        )
    assert failed == {"stage_prediction.label", "engagement_observation.value"}


def test_a_stale_source_and_a_drop_in_rows_are_warnings_not_failures(engine: Engine, tmp_path: Path) -> None:
    settings, config = _setup(engine, tmp_path)
    with engine.begin() as conn:
        ids = dict(conn.execute(select(source.c.name, source.c.source_id)).all())
        # mastodon last succeeded at the start of the day five days before (six days before the end of DAY)
        conn.execute(
            update(collection_run)
            .where(collection_run.c.source_id == ids["mastodon"])
            .values(run_date=DAY - timedelta(days=5), finished_at=T - timedelta(days=5))
        )
        # forum had 20 observations a day for a week; today only 1
        for back in range(1, 8):
            day = DAY - timedelta(days=back)
            conn.execute(
                insert(engagement_observation),
                [
                    {
                        "source_id": ids["forum"],
                        "subject_type": "item",
                        "subject_external_id": f"old{n}",
                        "metric": "likes",
                        "value": 1,
                        "observed_at": datetime.combine(day, datetime.min.time(), tzinfo=UTC),
                        "observed_date": day,
                    }
                    for n in range(20)
                ],
            )
    report = quality_step(settings, config, DAY, engine=engine)  # does not raise
    warnings = {(r.check_name, r.subject): r for r in report.warnings}
    assert set(warnings) == {("freshness", "mastodon"), ("row_count", "forum")}
    assert "6.0 days ago" in warnings[("freshness", "mastodon")].detail
    assert warnings[("row_count", "forum")].observed == 1 and warnings[("row_count", "forum")].expected == 20


def test_quality_command_exit_codes(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engage.cli import main

    settings, config = _setup(engine, tmp_path)
    monkeypatch.setenv("ENGAGE_HOME", str(settings.home))
    monkeypatch.setenv("ENGAGE_SOURCES", str(settings.sources_path))
    monkeypatch.setenv("ENGAGE_WAREHOUSE_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    result = runner.invoke(main, ["quality", "--date", DAY.isoformat()])
    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s)" in result.output
    with engine.begin() as conn:
        conn.execute(update(stage_prediction).values(model_label="maybe"))
    result = runner.invoke(main, ["quality", "--date", DAY.isoformat()])
    assert result.exit_code == 1 and "stage_prediction.label" in result.output
    assert check_day(settings, config, DAY, engine=engine).errors
