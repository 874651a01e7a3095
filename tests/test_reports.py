"""Reports on a warehouse whose contents are known, on SQLite and PostgreSQL.

Four accounts, two sales owners, three weeks of history built with the real
fact build: the right accounts, in the right order, with the right stages and
changes; collected text with HTML, scripts and quotes shown as text; a CSV
beside each table; alerts de-duplicated across days.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import lxml.html
import pytest
from sqlalchemy import Engine

from engage.errors import ConfigError
from engage.reports.build import build_prospect_report
from engage.reports.config import ReportConfig, Target, load_report_config
from engage.reports.daily import csv_cell, owner_slug, write_reports
from tests.test_facts import _author, _item, _source
from transforms.facts import build_facts_for_date
from transforms.people import import_crm, match_authors

D = date(2026, 11, 20)
XSS = """<script>alert("x")</script> <img src=x onerror=alert(1)> "quoted" & 'single'"""
FORMULA = '=HYPERLINK("http://evil.example/","click") <b>bold</b>'

CRM = """Contact ID,First Name,Last Name,Email,Job Title,Company Name,Website,Contact owner,Target Account
c-ann,Ann,Lee,ann@globex.com,Chief Technology Officer,Globex,globex.com,Sam Seller,yes
c-bob,Bob,Ray,bob@globex.com,VP Sales,Globex,globex.com,Sam Seller,yes
c-dee,Dee,Park,dee@initech.com,Software Engineer,Initech,initech.com,Kim Closer,yes
c-eve,Eve,Stone,eve@initech.com,Director of IT,Initech,initech.com,Kim Closer,yes
c-fay,Fay,Wu,fay@umbrella.com,Analyst,Umbrella,umbrella.com,Kim Closer,no
c-gus,Gus,Hill,gus@hooli.com,Engineer,Hooli,hooli.com,Sam Seller,yes
"""


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def build_known_warehouse(engine: Engine, tmp_path: Path) -> None:
    """The known history (D = 2026-11-20); expected answers in the tests below."""
    crm = tmp_path / "crm.csv"
    crm.write_text(CRM)
    import_crm(engine, crm)
    with engine.begin() as conn:
        forum = _source(conn, "forum", "https://community.example.com/latest.json")
        people = {
            name: _author(conn, forum, name, email=f"{name}@{domain}.com", display_name=name.title())
            for name, domain in (
                ("ann", "globex"),
                ("bob", "globex"),
                ("dee", "initech"),
                ("eve", "initech"),
                ("fay", "umbrella"),
                ("gus", "hooli"),
            )
        }
        us = _author(conn, forum, "acme_support", is_ours=True, display_name="Acme Support")
        # Our threads: a checklist post (Dee, then Eve take part), pricing (Dee waits), and a setup guide (answered).
        _item(
            conn,
            forum,
            "ourpost",
            us,
            at(D - timedelta(days=10), 9),
            kind="post",
            thread="ourpost",
            ours=True,
            url="https://acme.example/blog/forecasting-checklist",
        )
        _item(
            conn,
            forum,
            "ourpost2",
            us,
            at(D - timedelta(days=4), 9),
            kind="post",
            thread="ourpost2",
            ours=True,
            url="https://acme.example/blog/pricing",
        )
        _item(
            conn,
            forum,
            "ourpost3",
            us,
            at(D - timedelta(days=5), 9),
            kind="post",
            thread="ourpost3",
            ours=True,
        )
        with_titles = {"ourpost": "Forecasting checklist", "ourpost2": "Pricing questions"}
        for ext, title in with_titles.items():
            from sqlalchemy import update

            from engage.warehouse.schema import content_item

            conn.execute(update(content_item).where(content_item.c.external_id == ext).values(title=title))
        # Globex: two decision makers on D, in a thread of their own.
        _item(
            conn,
            forum,
            "t1",
            people["ann"],
            at(D, 9),
            kind="post",
            thread="t1",
            stage="evaluation",
            url="https://community.example.com/t/t1",
        )
        _item(
            conn,
            forum,
            "r2",
            people["bob"],
            at(D, 13),
            thread="t1",
            stage="decision",
            url="https://community.example.com/t/t1/2",
        )
        # Initech: awareness on D-6 in our thread, evaluation on D (Eve, a decision maker): forward.
        _item(
            conn,
            forum,
            "dee1",
            people["dee"],
            at(D - timedelta(days=6), 10),
            thread="ourpost",
            stage="awareness",
        )
        _item(conn, forum, "dee2", people["dee"], at(D - timedelta(days=2), 10), thread="ourpost2")
        _item(conn, forum, "eve1", people["eve"], at(D, 10), thread="ourpost", stage="evaluation")
        # Umbrella (not a target): decision three weeks ago, awareness in the window; untrusted text and URL.
        _item(
            conn,
            forum,
            "fay0",
            people["fay"],
            at(D - timedelta(days=20), 10),
            kind="post",
            thread="fay0",
            stage="decision",
        )
        fay = _item(
            conn,
            forum,
            "fay1",
            people["fay"],
            at(D - timedelta(days=2), 11),
            kind="post",
            thread="fay1",
            stage="awareness",
            url="javascript:alert(1)",
        )
        conn.execute(
            update(content_item).where(content_item.c.item_id == fay).values(title=None, body_text=XSS)
        )
        # Hooli: awareness on D-3, answered by us an hour later.
        gus = _item(
            conn,
            forum,
            "gus1",
            people["gus"],
            at(D - timedelta(days=3), 8),
            thread="ourpost3",
            stage="awareness",
        )
        conn.execute(update(content_item).where(content_item.c.item_id == gus).values(title=FORMULA))
        _item(conn, forum, "us3", us, at(D - timedelta(days=3), 9), thread="ourpost3", ours=True)
    assert match_authors(engine) == 6
    for offset in range(21, -1, -1):
        build_facts_for_date(engine, D - timedelta(days=offset))


@pytest.fixture
def known(engine: Engine, tmp_path: Path) -> Engine:
    build_known_warehouse(engine, tmp_path)
    return engine


CONFIG = ReportConfig(targets={"our_replies": Target(5), "median_response_minutes": Target(120, "max")})


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_accounts_ranked_with_stages_and_changes(known: Engine, tmp_path: Path) -> None:
    root = tmp_path / "reports"
    first = write_reports(known, D - timedelta(days=3), root, CONFIG)
    assert first.folder == root / "2026-11-17"
    result = write_reports(known, D, root, CONFIG)
    rows = _csv(result.folder / "prospects.csv")
    # Globex and Initech both score 4 (decision makers count twice); Globex's stage is further on.
    # Umbrella and Hooli score 1; Umbrella is at decision, Hooli at awareness.
    assert [(r["rank"], r["account"], r["stage"], r["previous_stage"], r["change"]) for r in rows] == [
        ("1", "Globex", "decision", "", "new"),
        ("2", "Initech", "evaluation", "awareness", "forward"),  # against the report of 2026-11-17
        ("3", "Umbrella", "decision", "decision", "steady"),
        ("4", "Hooli", "awareness", "awareness", "steady"),
    ]
    assert [(r["items"], r["decision_maker_items"], r["people"], r["decision_makers"]) for r in rows] == [
        ("2", "2", "2", "2"),
        ("3", "1", "2", "1"),
        ("1", "0", "1", "0"),
        ("1", "0", "1", "0"),
    ]
    html = (result.folder / "prospects.html").read_text(encoding="utf-8")
    assert "the report of 2026-11-17" in html


def test_without_an_earlier_report_the_change_is_against_the_day_before_the_window(known: Engine) -> None:
    report = build_prospect_report(known, D, window_days=7, compared_with=None)
    assert report.compared_with == date(2026, 11, 13) and not report.compared_with_report
    changes = {a.name: (a.previous_stage, a.stage, a.change, a.stage_since) for a in report.accounts}
    assert changes == {
        "Globex": (None, "decision", "new", D),
        "Initech": (None, "evaluation", "new", D),  # awareness began on D-6, inside the window
        "Umbrella": ("decision", "decision", "steady", D - timedelta(days=20)),
        "Hooli": (None, "awareness", "new", D - timedelta(days=3)),
    }
    initech = next(a for a in report.accounts if a.name == "Initech")
    assert [(p.name, p.is_decision_maker, p.items) for p in initech.people] == [
        ("Eve Stone", True, 1),
        ("Dee Park", False, 2),
    ]
    assert (
        initech.timeline_items[-1] == 1
        and initech.timeline_items[-7] == 1
        and sum(initech.timeline_items) == 3
    )
    assert initech.timeline_decision_makers[-1] == 1


def test_per_owner_reports_and_index_pages(known: Engine, tmp_path: Path) -> None:
    root = tmp_path / "reports"
    result = write_reports(known, D, root, CONFIG)
    names = {p.name for p in result.folder.iterdir()}
    assert {
        "index.html",
        "prospects.html",
        "prospects-sam-seller.html",
        "prospects-kim-closer.html",
        "kpis.html",
        "alerts.html",
    } <= names
    # A CSV beside each table.
    assert {
        "prospects.csv",
        "prospects-items.csv",
        "prospects-sam-seller.csv",
        "prospects-sam-seller-items.csv",
        "prospects-kim-closer.csv",
        "kpis.csv",
        "half-life.csv",
        "moving-content.csv",
        "alerts.csv",
    } <= names
    assert [r["account"] for r in _csv(result.folder / "prospects-kim-closer.csv")] == ["Initech", "Umbrella"]
    assert [r["account"] for r in _csv(result.folder / "prospects-sam-seller.csv")] == ["Globex", "Hooli"]
    page = lxml.html.parse(str(result.folder / "prospects-kim-closer.html")).getroot()
    assert [
        h.text_content().split(". ", 1)[1].split()[0] for h in page.xpath("//section[@class='account']/h3")
    ] == ["Initech", "Umbrella"]
    assert "Eve Stone" in page.text_content() and "Ann Lee" not in page.text_content()
    day_index = lxml.html.parse(str(result.folder / "index.html")).getroot()
    links = {a.get("href") for a in day_index.iter("a")}
    assert {
        "prospects.html",
        "prospects-kim-closer.html",
        "prospects-sam-seller.html",
        "kpis.html",
        "alerts.html",
        "kpis.csv",
    } <= links
    for href in links - {"../index.html"}:
        assert (result.folder / href).exists(), href
    write_reports(known, D - timedelta(days=1), root, CONFIG, owner="Kim Closer")
    root_index = lxml.html.parse(str(root / "index.html")).getroot()
    dates = [a.text_content() for a in root_index.xpath("//tbody/tr/td[1]/a")]
    assert dates == ["2026-11-20", "2026-11-19"]
    assert not (root / "2026-11-19" / "prospects.html").exists()
    assert (root / "2026-11-19" / "prospects-kim-closer.html").exists()
    write_reports(known, D, root, CONFIG, owner="Kim Closer")  # one owner again: the others stay listed
    links = {a.get("href") for a in lxml.html.parse(str(result.folder / "index.html")).getroot().iter("a")}
    assert {"prospects.html", "prospects-kim-closer.html", "prospects-sam-seller.html"} <= links


def test_collected_text_is_shown_as_text_never_run(known: Engine, tmp_path: Path) -> None:
    result = write_reports(known, D, tmp_path / "reports", CONFIG)
    for name in (
        "prospects.html",
        "prospects-kim-closer.html",
        "prospects-sam-seller.html",
        "kpis.html",
        "alerts.html",
        "index.html",
    ):
        raw = (result.folder / name).read_text(encoding="utf-8")
        page = lxml.html.fromstring(raw)
        assert page.xpath("//script") == [], name
        assert page.xpath("//img") == [] and page.xpath("//@onerror") == [], name
        assert not any(h.strip().lower().startswith("javascript:") for h in page.xpath("//a/@href")), name
        assert all(
            h.startswith(("http://", "https://", "#")) or "/" not in h.strip("./") or h.startswith("../")
            for h in page.xpath("//a/@href")
        ), name
        assert "<b>bold</b>" not in raw and "<script>alert" not in raw, name
        assert not page.xpath("//link[@href]") and not page.xpath("//*[@src]"), name
    page = lxml.html.parse(str(result.folder / "prospects.html")).getroot()
    text = page.text_content()
    assert XSS in " ".join(text.split()) or 'alert("x")' in text
    assert '<script>alert("x")</script>' in text and "<b>bold</b>" in text
    umbrella_row = [
        tr for tr in page.xpath("//tr") if "fay1" in tr.text_content() or "onerror" in tr.text_content()
    ]
    assert umbrella_row and not umbrella_row[0].xpath(".//a")  # the javascript: URL is not a link
    items = _csv(result.folder / "prospects-items.csv")
    hooli = next(r for r in items if r["account"] == "Hooli")
    assert hooli["text"].startswith("'=HYPERLINK")  # CSV injection neutralised
    umbrella = next(r for r in items if r["account"] == "Umbrella")
    assert umbrella["text"] == XSS and umbrella["url"] == ""


def test_kpis_against_targets_half_life_and_moving_content(known: Engine, tmp_path: Path) -> None:
    result = write_reports(known, D, tmp_path / "reports", CONFIG)
    kpis = _csv(result.folder / "kpis.csv")
    current = {r["kpi"]: r for r in kpis if r["period_end"] == "2026-11-20"}
    previous = {r["kpi"]: r for r in kpis if r["period_end"] == "2026-11-13"}
    assert len({r["period_end"] for r in kpis}) == 12
    # The 7 days to D: our posts ourpost2 (D-4), ourpost3 (D-5), our reply us3 (D-3).
    assert float(current["our_items_published"]["value"]) == 3 and float(current["our_replies"]["value"]) == 1
    assert float(previous["our_items_published"]["value"]) == 1  # ourpost on D-10
    assert float(current["our_replies"]["target"]) == 5 and current["our_replies"]["met"] == "no"
    assert (
        float(current["median_response_minutes"]["value"]) == 60
        and current["median_response_minutes"]["met"] == "yes"
    )
    moving = _csv(result.folder / "moving-content.csv")
    assert [(m["content"], m["accounts"]) for m in moving] == [
        ("Forecasting checklist", "Initech"),
        ("Pricing questions", "Initech"),
    ]
    assert moving[0]["url"] == "https://acme.example/blog/forecasting-checklist"
    page = lxml.html.parse(str(result.folder / "kpis.html")).getroot()
    assert "missed" in page.text_content()
    assert len(page.xpath("//figure[@class='chart']/svg")) >= 3
    assert {r["age_bucket"] for r in _csv(result.folder / "half-life.csv")} >= {"00-06h", "7d+"}


def test_alerts_and_their_de_duplication(known: Engine, tmp_path: Path) -> None:
    root = tmp_path / "reports"
    result = write_reports(known, D, root, CONFIG)
    alerts = {(a.kind, a.account) for a in result.alerts}
    assert alerts == {
        ("decision_maker", "Globex"),  # Ann and Bob
        ("decision_maker", "Initech"),  # Eve
        ("stage_forward", "Initech"),
        ("thread_waiting", "Initech"),  # Dee's question in our pricing thread, 62 hours by the end of D
    }
    assert len([a for a in result.alerts if a.kind == "decision_maker"]) == 3
    waiting = next(a for a in result.alerts if a.kind == "thread_waiting")
    assert "Dee" in waiting.text and "62 h" in waiting.text and "Pricing questions" in waiting.text
    assert all(a.new for a in result.alerts)
    again = write_reports(known, D, root, CONFIG)  # a rerun of the day: still that day's news
    assert all(a.new for a in again.alerts)
    next_day = write_reports(known, D + timedelta(days=1), root, CONFIG)
    seen = {(a.kind, a.new) for a in next_day.alerts}
    # Dee still waits (already reported); Eve's reply in our checklist thread now waited 38 h too (new).
    assert seen == {("thread_waiting", False), ("thread_waiting", True)}
    state = json.loads((root / "alert-state.json").read_text())["alerts"]
    assert len(state) == 6 and all(not v["sent"] for v in state.values())
    assert [r["new"] for r in _csv(next_day.folder / "alerts.csv")].count("no") == 1


def test_report_config_errors_name_the_file_and_field() -> None:
    config = load_report_config(
        {
            "targets": {"our_replies": 20, "median_response_minutes": {"max": 90}},
            "reports": {
                "recipients": {"all": "lead@acme.example", "Sam Seller": ["sam@acme.example"]},
                "window_days": 14,
            },
            "alerts": {"wait_hours": 12, "email": ["alerts@acme.example"]},
        },
        "sources.yml",
    )
    assert config.targets["median_response_minutes"] == Target(90, "max") and config.window_days == 14
    assert config.recipients["all"] == ("lead@acme.example",) and config.wait_hours == 12
    for extra, message in (
        ({"targets": {"likes": 3}}, "sources.yml: targets, field 'likes': unknown KPI"),
        (
            {"targets": {"our_replies": "many"}},
            "sources.yml: targets, field 'our_replies': 'many' is not a number",
        ),
        (
            {"reports": {"recipients": {"Sam": ["not-an-address"]}}},
            "sources.yml: reports, field 'recipients', owner 'Sam'",
        ),
        (
            {"reports": {"webhook_url": "javascript:alert(1)"}},
            "sources.yml: reports, field 'webhook_url': is not an http(s) URL",
        ),
        (
            {"alerts": {"wait_hours": -1}},
            "sources.yml: alerts, field 'wait_hours': -1 is not a positive number",
        ),
        ({"alerts": {"sms": "x"}}, "sources.yml: alerts, field 'sms': unknown"),
    ):
        with pytest.raises(ConfigError) as info:
            load_report_config(extra, "sources.yml")
        assert message in str(info.value)


def test_csv_cells_and_owner_file_names_are_safe() -> None:
    assert [csv_cell(v) for v in ("=1+1", "+x", "-x", "@x", "\tx", "ok", -3, None, True)] == [
        "'=1+1",
        "'+x",
        "'-x",
        "'@x",
        "'\tx",
        "ok",
        -3,
        "",
        "yes",
    ]
    taken: set[str] = set()
    assert owner_slug("../../etc/passwd", taken) == "etc-passwd"
    assert (
        owner_slug("Sam Seller", taken) == "sam-seller" and owner_slug("sam  seller", taken) == "sam-seller-2"
    )
    assert owner_slug("李", taken) == "owner"


def test_engage_report_command(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from engage.cli import main

    build_known_warehouse(sqlite_engine, tmp_path)
    sources = tmp_path / "sources.yml"
    sources.write_text(
        "sources:\n  - {name: forum, kind: rss, url: 'https://community.example.com/feed'}\ntargets: {our_replies: 5}\n"
    )
    monkeypatch.setenv("ENGAGE_WAREHOUSE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("ENGAGE_SOURCES", str(sources))
    monkeypatch.setenv("ENGAGE_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["report", "--date", "2026-11-20", "--owner", "Kim Closer", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (
        "2026-11-20: 2 accounts, 3 alerts (3 new)" in result.output
    )  # Kim's: Initech's two, and the waiting thread
    assert f"reports: {out / '2026-11-20' / 'index.html'}" in result.output
    assert [r["account"] for r in _csv(out / "2026-11-20" / "prospects-kim-closer.csv")] == [
        "Initech",
        "Umbrella",
    ]
    assert not (out / "2026-11-20" / "prospects.html").exists() and (out / "index.html").exists()
    sent = CliRunner().invoke(main, ["report", "--date", "2026-11-20", "--out", str(out), "--send"])
    assert sent.exit_code == 0 and "nothing to send" in sent.output
    sources.write_text(sources.read_text() + "alerts: {wait_hours: soon}\n")
    bad = CliRunner().invoke(main, ["report", "--date", "2026-11-20", "--out", str(out)])
    assert bad.exit_code == 2 and "alerts, field 'wait_hours': 'soon' is not a positive number" in bad.output
