"""Test support for the social collectors' tests: the real pipeline, day after day."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import Engine, func, select

from engage.warehouse.schema import content_item, engagement_observation


def run_days(
    engine: Engine, tmp_path: Path, source_yaml: str, team: str, days: list[date]
) -> tuple[int, int, dict[date, int]]:
    """Collect and load the one source of ``source_yaml`` on each of ``days``
    with the real pipeline; items, our items, and observations per day."""
    from engage import pipeline
    from engage.config import load_sources
    from engage.settings import Settings

    sources = tmp_path / "sources.yml"
    sources.write_text(f"team: {{handles: [{team}]}}\nsources:\n  - {source_yaml}\n", encoding="utf-8")
    settings = Settings(home=tmp_path / "home", warehouse_url=str(engine.url), sources_path=sources)
    config = load_sources(sources)
    name = config.sources[0].name
    for day in days:
        pipeline.collect_source(settings, config, name, day, engine=engine)
        pipeline.load_day(settings, config, day, engine=engine)
    with engine.connect() as conn:
        items = conn.execute(select(func.count()).select_from(content_item)).scalar_one()
        ours = conn.execute(select(func.count()).where(content_item.c.is_ours)).scalar_one()
        per_day = dict(
            conn.execute(
                select(engagement_observation.c.observed_date, func.count()).group_by(
                    engagement_observation.c.observed_date
                )
            ).all()
        )
    return items, ours, per_day
