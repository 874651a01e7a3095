"""engage forget and the retention of people never matched, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from requests.structures import CaseInsensitiveDict
from sqlalchemy import Engine, func, insert, select

from collectors.http import HttpResponse
from collectors.records import AuthorRecord, CollectResult, ItemRecord, ObservationRecord
from engage.privacy import PrivacyError, anonymise_unmatched, forget
from engage.raw import RawLanding
from engage.settings import Settings
from engage.warehouse.schema import (
    author,
    content_item,
    engagement_observation,
    metadata,
    privacy_request,
    prospect,
    stage_prediction,
)
from tests.test_facts import DAY, T, _author, _item, build_day
from transforms.facts import build_facts_for_date


def _settings(engine: Engine, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home", warehouse_url=str(engine.url), sources_path=tmp_path / "sources.yml"
    )


def _everything(engine: Engine) -> str:
    """Every row of every table, as one lower-cased text."""
    parts = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            parts += [repr(tuple(row)) for row in conn.execute(select(table))]
    return "\n".join(parts).lower()


def _land(settings: Settings, source_name: str, body: bytes) -> Path:
    landing = RawLanding(settings.raw_dir, DAY, source_name)
    landing(
        HttpResponse(
            url="https://community.example.com/t/1.json",
            status=200,
            headers=CaseInsensitiveDict({"Content-Type": "application/json"}),
            body=body,
            fetched_at=T,
            elapsed=0.1,
            attempts=1,
        )
    )
    return landing.folder


def _stage(settings: Settings, source_name: str, result: CollectResult) -> Path:
    from engage.pipeline import _write_staged, staged_path

    path = staged_path(settings, DAY, source_name)
    _write_staged(path, result)
    return path


@pytest.fixture
def known(engine: Engine, tmp_path: Path) -> tuple[Engine, Settings]:
    build_day(engine, tmp_path)
    build_facts_for_date(engine, DAY)
    settings = _settings(engine, tmp_path)
    _land(settings, "forum", b'{"post_stream": {"posts": [{"username": "ann", "email": "Ann@Globex.com"}]}}')
    _land(settings, "forum", b'{"post_stream": {"posts": [{"username": "someone_else"}]}}')
    _stage(
        settings,
        "forum",
        CollectResult(
            authors=[
                AuthorRecord("ann", email="ann@globex.com", display_name="Ann Lee"),
                AuthorRecord("carol"),
            ],
            items=[
                ItemRecord("t9", "reply", text="hello", author_external_id="ann"),
                ItemRecord("t10", "reply", text="other", author_external_id="carol"),
            ],
            observations=[
                ObservationRecord("item", "t9", "likes", 2),
                ObservationRecord("item", "t10", "likes", 1),
            ],
        ),
    )
    return engine, settings


def test_forget_by_email_removes_the_person_from_every_table_and_file(known: tuple[Engine, Settings]) -> None:
    engine, settings = known
    before = _everything(engine)
    assert "ann@globex.com" in before and "ann lee" in before
    with engine.connect() as conn:
        items_before = conn.execute(select(func.count()).select_from(content_item)).scalar_one()
        predictions_before = conn.execute(select(func.count()).select_from(stage_prediction)).scalar_one()

    report = forget(settings, engine=engine, email=" Ann@Globex.com ")

    after = _everything(engine)
    assert "ann@globex.com" not in after and "ann lee" not in after and "c-ann" not in after
    assert report.removed["author"] == 1 and report.removed["prospect"] == 1
    assert report.removed["content_item"] == 1  # her post t1
    assert report.removed["engagement_observation"] == 1  # the likes of t1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(content_item)).scalar_one() == items_before - 1
        assert (
            conn.execute(select(func.count()).select_from(stage_prediction)).scalar_one()
            == predictions_before - 1
        )
        # Other people stay, with their content and the referral to our blog post.
        assert conn.execute(select(func.count()).where(author.c.display_name == "Bob Ray")).scalar_one() == 1
        assert conn.execute(select(func.count()).where(prospect.c.crm_id == "c-bob")).scalar_one() == 1
        request = conn.execute(select(privacy_request)).one()
    assert request.identifier_kind == "email" and "ann" not in request.removed_json
    assert len(request.identifier_sha256) == 64

    # Raw landing: the response that mentions her is gone, the other one stays.
    bodies = [gzip.decompress(p.read_bytes()) for p in settings.raw_dir.rglob("*.body.gz")]
    assert len(bodies) == 1 and b"someone_else" in bodies[0]
    assert len(list(settings.raw_dir.rglob("*.json"))) == 1  # the other response's metadata
    # Staging: her records are taken out of the result still waiting to be loaded.
    from engage.pipeline import _read_staged, staged_path

    staged = _read_staged(staged_path(settings, DAY, "forum"))
    assert [a.external_id for a in staged.authors] == ["carol"]
    assert [i.external_id for i in staged.items] == ["t10"]
    assert [o.subject_external_id for o in staged.observations] == ["t10"]
    assert any("raw" in f for f in report.files) and any("staging" in f for f in report.files)


def test_forget_is_idempotent(known: tuple[Engine, Settings]) -> None:
    engine, settings = known
    forget(settings, engine=engine, email="ann@globex.com")
    state = _everything(engine)
    again = forget(settings, engine=engine, email="ann@globex.com")
    assert again.total == 0 and again.removed == {}
    # Only the new request's own record differs.
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(privacy_request)).scalar_one() == 2
    assert _everything(engine).count("\n") == state.count("\n") + 1


def test_forget_by_handle_finds_the_author_and_the_crm_prospect(known: tuple[Engine, Settings]) -> None:
    engine, settings = known
    report = forget(settings, engine=engine, handle="@bobray")
    text = _everything(engine)
    assert "bob ray" not in text and "bobray" not in text and "c-bob" not in text
    assert report.removed["author"] == 1 and report.removed["prospect"] == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(content_item.c.external_id == "r2")).scalar_one() == 0
        assert conn.execute(select(func.count()).where(author.c.display_name == "Ann Lee")).scalar_one() == 1


def test_forget_needs_exactly_one_valid_identifier(known: tuple[Engine, Settings]) -> None:
    engine, settings = known
    with pytest.raises(PrivacyError, match="exactly one"):
        forget(settings, engine=engine)
    with pytest.raises(PrivacyError, match="exactly one"):
        forget(settings, engine=engine, email="a@b.c", handle="x")
    with pytest.raises(PrivacyError, match="not an e-mail"):
        forget(settings, engine=engine, email="nobody")


def test_forget_command(known: tuple[Engine, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    from engage.cli import main

    engine, settings = known
    monkeypatch.setenv("ENGAGE_HOME", str(settings.home))
    monkeypatch.setenv("ENGAGE_WAREHOUSE_URL", str(engine.url.render_as_string(hide_password=False)))
    runner = CliRunner()
    result = runner.invoke(main, ["forget", "--email", "ann@globex.com", "--yes"])
    assert result.exit_code == 0, result.output
    assert "author" in result.output and "prospect" in result.output
    assert "ann@globex.com" not in result.output  # counts only, never the person's data
    result = runner.invoke(main, ["forget", "--email", "ann@globex.com", "--yes"])
    assert result.exit_code == 0 and "Nothing found" in result.output
    result = runner.invoke(main, ["forget", "--email", "a@b.c", "--handle", "x", "--yes"])
    assert result.exit_code == 2


def test_people_never_matched_are_anonymised_after_the_retention(engine: Engine, tmp_path: Path) -> None:
    build_day(engine, tmp_path)
    long_ago = T - timedelta(days=400)
    with engine.begin() as conn:
        forum = conn.execute(select(author.c.source_id).limit(1)).scalar_one()
        zed = _author(conn, forum, "zed_99", handle="zed", display_name="Zed Zimmer", bio="hi")
        conn.execute(author.update().where(author.c.author_id == zed).values(last_seen_at=long_ago))
        _item(conn, forum, "z1", zed, long_ago)
        recent = _author(conn, forum, "yan", display_name="Yan Recent")
        conn.execute(
            insert(engagement_observation).values(
                source_id=forum,
                subject_type="item",
                subject_external_id="z1",
                metric="likes",
                value=3,
                observed_at=long_ago,
                observed_date=long_ago.date(),
            )
        )
    assert anonymise_unmatched(engine, date(2026, 11, 21), 365) == 1
    assert anonymise_unmatched(engine, date(2026, 11, 21), 365) == 0  # already done
    with engine.connect() as conn:
        row = conn.execute(select(author).where(author.c.author_id == zed)).one()
        kept = conn.execute(select(author.c.display_name).where(author.c.author_id == recent)).scalar_one()
        item_author = conn.execute(
            select(content_item.c.author_id).where(content_item.c.external_id == "z1")
        ).scalar_one()
        matched = conn.execute(
            select(author.c.display_name).where(author.c.display_name.in_(["Ann Lee", "Bob Ray"]))
        ).all()
    assert (
        row.external_id.startswith("anon:")
        and row.handle is None
        and row.display_name is None
        and row.bio is None
    )
    assert item_author == zed  # the post stays, for the KPIs, without saying who wrote it
    assert kept == "Yan Recent" and len(matched) == 2  # recent and matched people are untouched
    assert "zed" not in _everything(engine)
    assert anonymise_unmatched(engine, date(2026, 11, 21), 0) == 0  # 0 turns it off
