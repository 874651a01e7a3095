"""CRM import, matching overrides and referrals from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engage.cli import main
from engage.warehouse.db import make_engine
from engage.warehouse.schema import author, author_match, referral
from tests.test_facts import CRM, build_day
from transforms.referrals import normalise_url, parse_referral


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENGAGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ENGAGE_WAREHOUSE_URL", raising=False)
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    return tmp_path


def test_crm_import_reports_counts_and_bad_files_name_themselves(home: Path) -> None:
    good = home / "contacts.csv"
    good.write_text(CRM)
    result = CliRunner().invoke(main, ["crm", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "4 prospects (2 decision makers) in 2 accounts" in result.output
    bad = home / "bad.csv"
    bad.write_text("Name,Phone\nAnn,123\n")
    result = CliRunner().invoke(main, ["crm", "import", str(bad)])
    assert result.exit_code == 2 and "bad.csv" in result.output and "e-mail or id" in result.output


def test_override_to_nobody_and_back(home: Path) -> None:
    engine = make_engine(f"sqlite:///{home / 'home' / 'warehouse.db'}")
    build_day(engine, home)
    runner = CliRunner()
    result = runner.invoke(main, ["match", "override", "forum", "ann", "--none", "--note", "shared inbox"])
    assert result.exit_code == 0, result.output

    def method() -> str | None:
        with engine.connect() as conn:
            return conn.execute(
                select(author_match.c.method)
                .join(author, author.c.author_id == author_match.c.author_id)
                .where(author.c.external_id == "ann")
            ).scalar()

    assert method() == "override_none"
    assert runner.invoke(main, ["match", "override", "forum", "ann", "--prospect", "c-carl"]).exit_code == 0
    assert method() == "override"
    result = runner.invoke(main, ["match", "override", "forum", "ann", "--prospect", "nobody-123"])
    assert result.exit_code == 2 and "nobody-123" in result.output


def test_referral_import_errors_name_the_row(home: Path) -> None:
    path = home / "refs.csv"
    path.write_text(
        "Date,Referrer,Landing page,Sessions\n2026-11-20,https://x.example/a,/pricing,3\n2026-13-45,,/x,1\n"
    )
    result = CliRunner().invoke(main, ["referrals", "import", str(path), "--site", "https://acme.example"])
    assert result.exit_code == 2 and "refs.csv:3" in result.output
    engine = make_engine(f"sqlite:///{home / 'home' / 'warehouse.db'}")
    with engine.connect() as conn:
        assert conn.execute(select(referral)).first() is None  # nothing half-loaded


def test_url_normalisation_and_utm_split() -> None:
    assert (
        normalise_url("HTTP://WWW.Acme.com/Blog/?b=2&a=1&utm_source=x#top") == "https://acme.com/Blog?a=1&b=2"
    )
    parsed = parse_referral(
        "https://news.ycombinator.com/item?id=1",
        "/pricing?utm_source=hn&utm_medium=social",
        base="https://acme.com",
    )
    assert parsed.landing_url == "https://acme.com/pricing" and parsed.utm["utm_source"] == "hn"
    assert parsed.referrer_host == "news.ycombinator.com"
