"""Analyst views on SQLite and PostgreSQL: known answers, and unique / not-null / relationship checks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.test_facts import DAY, build_day
from transforms.facts import build_facts_for_date
from transforms.views import render, view_files, view_name

# view -> (unique key, not-null columns, {column: (table, column)} relationships)
CHECKS: dict[str, tuple[tuple[str, ...], tuple[str, ...], dict[str, tuple[str, str]]]] = {
    "v_kpi_weekly": (
        ("week_start", "source_name"),
        ("week_start", "source_name", "items_published"),
        {"source_name": ("source", "name")},
    ),
    "v_kpi_monthly": (
        ("month_start", "source_name"),
        ("month_start", "source_name", "replies"),
        {"source_name": ("source", "name")},
    ),
    "v_prospect_engagement": (
        ("prospect_id",),
        ("prospect_id", "crm_id", "items"),
        {"prospect_id": ("prospect", "prospect_id"), "account_id": ("account", "account_id")},
    ),
    "v_decision_maker_engagement": (
        ("item_id",),
        ("item_id", "source_name", "published_at"),
        {"item_id": ("content_item", "item_id")},
    ),
    "v_account_journey": (
        ("account_id",),
        ("account_id", "account_name", "current_stage", "momentum"),
        {"account_id": ("account", "account_id")},
    ),
    "v_content_half_life": (
        ("source_name", "age_bucket"),
        ("source_name", "age_bucket", "new_engagement"),
        {"source_name": ("source", "name")},
    ),
    "v_attribution": (
        ("referral_id",),
        ("referral_id", "referral_date", "sessions", "landing_url", "credit"),
        {"referral_id": ("referral", "referral_id")},
    ),
    "v_author_decision_maker": (
        ("author_id",),
        ("author_id", "evidence"),
        {"author_id": ("author", "author_id")},
    ),
}


def test_every_view_file_has_checks() -> None:
    assert {view_name(p) for p in view_files()} == set(CHECKS)


def test_macros_expand_for_both_dialects() -> None:
    sql = "select {{days_between({{today}}, x.d)}}, {{week_start(x.d)}}"
    assert (
        render(sql, "sqlite")
        == "select cast(julianday(date('now')) - julianday(x.d) as integer), date(x.d, 'weekday 0', '-6 days')"
    )
    assert "date_trunc('week', x.d)" in render(sql, "postgresql")


@pytest.fixture
def known_day(engine: Engine, tmp_path: Path) -> Engine:
    build_day(engine, tmp_path)
    build_facts_for_date(engine, DAY)
    return engine


def _rows(engine: Engine, sql: str) -> list[dict]:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql))]


def test_views_show_the_known_day(known_day: Engine) -> None:
    weekly = {r["source_name"]: r for r in _rows(known_day, "select * from v_kpi_weekly")}
    assert str(weekly["forum"]["week_start"]) == "2026-11-16"
    assert weekly["forum"]["replies"] == 3 and weekly["forum"]["referrals"] == 9
    assert weekly["mastodon"]["followers_net_change"] == -10
    monthly = _rows(known_day, "select * from v_kpi_monthly where source_name = 'forum'")
    assert str(monthly[0]["month_start"]) == "2026-11-01"
    journey = _rows(known_day, "select * from v_account_journey")
    assert [(j["account_name"], j["current_stage"], j["momentum"]) for j in journey] == [
        ("Globex", "decision", "new")
    ]
    assert str(journey[0]["stage_entered_date"]) == str(DAY) and journey[0]["days_in_stage"] >= 0
    people = {r["full_name"]: r for r in _rows(known_day, "select * from v_prospect_engagement")}
    assert set(people) == {"Ann Lee", "Bob Ray"}
    assert people["Bob Ray"]["latest_stage"] == "decision" and people["Ann Lee"]["account_name"] == "Globex"
    dms = _rows(known_day, "select * from v_decision_maker_engagement")
    assert sorted(r["author_name"] for r in dms) == ["Ann Lee", "Bob Ray"]
    attribution = _rows(known_day, "select * from v_attribution")
    assert attribution[0]["utm_campaign"] == "q4" and attribution[0]["referring_source"] == "forum"
    half_life = _rows(known_day, "select * from v_content_half_life")
    assert [(r["age_bucket"], r["share_of_engagement"]) for r in half_life] == [("12-24h", 1.0)]


@pytest.mark.parametrize("view", sorted(CHECKS))
def test_view_checks(known_day: Engine, view: str) -> None:
    unique, not_null, relationships = CHECKS[view]
    cols = ", ".join(unique)
    duplicates = _rows(
        known_day, f"select {cols}, count(*) as n from {view} group by {cols} having count(*) > 1"
    )
    assert duplicates == [], f"{view}: duplicate keys"
    for column in not_null:
        assert _rows(known_day, f"select count(*) as n from {view} where {column} is null")[0]["n"] == 0, (
            f"{view}.{column} has nulls"
        )
    for column, (table, target) in relationships.items():
        orphans = _rows(
            known_day,
            f"select count(*) as n from {view} as v where v.{column} is not null "
            f"and not exists (select 1 from {table} as t where t.{target} = v.{column})",
        )
        assert orphans[0]["n"] == 0, f"{view}.{column} points nowhere in {table}.{target}"
    assert _rows(known_day, f"select count(*) as n from {view}")[0]["n"] > 0, (
        f"{view} is empty on the known day"
    )


def test_fact_tables_have_unique_natural_keys_and_valid_references(known_day: Engine) -> None:
    for table, key in (
        ("fct_source_daily", "fact_date, source_id"),
        ("fct_account_daily", "fact_date, account_id"),
        ("fct_item_engagement", "fact_date, item_id"),
        ("account_stage_history", "account_id, entered_date"),
    ):
        assert _rows(known_day, f"select {key} from {table} group by {key} having count(*) > 1") == []
    assert (
        _rows(
            known_day,
            "select count(*) as n from stage_prediction where label not in "
            "('awareness','consideration','evaluation','decision','adoption','off_topic','uncertain')",
        )[0]["n"]
        == 0
    )
    assert date(2026, 11, 20) == DAY
