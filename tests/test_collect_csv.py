"""The csv collector on small realistic exports in tests/data/csv (and the real pipeline)."""

from __future__ import annotations

import codecs
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, func, select

from collectors.base import CollectContext
from collectors.csv_files import collect, decode, parse_number, read_table
from collectors.http import HttpClient
from engage.config import SourceConfig, load_sources
from engage.errors import ConfigError, FetchError, ParseError
from engage.warehouse.schema import engagement_observation, referral
from tests.social_support import run_days

DATA = Path(__file__).parent / "data" / "csv"
RUN_DATE = date(2026, 11, 21)


def context(url: str | Path, **options: Any) -> CollectContext:
    src = SourceConfig(name="exports", kind="csv", url=str(url), options=options)
    return CollectContext(source=src, client=HttpClient(retries=0), run_date=RUN_DATE)


def observed(result: Any) -> dict[tuple[str, str, str | None], float]:
    return {(o.subject_external_id, o.metric, o.observed_date): o.value for o in result.observations}


# --- presets ---------------------------------------------------------------------


def test_linkedin_followers_are_account_observations_on_the_exports_own_days() -> None:
    result = collect(
        context(DATA / "linkedin_followers_2026-11.csv", format="linkedin_followers", account="acme-page")
    )
    values = observed(result)
    assert values[("acme-page", "new_followers", "2026-11-16")] == 12
    assert values[("acme-page", "new_followers", "2026-11-19")] == 1245  # "1,245"
    assert values[("acme-page", "new_followers_organic", "2026-11-19")] == 1204
    assert values[("acme-page", "new_followers_sponsored", "2026-11-17")] == 3
    assert values[("acme-page", "new_followers_auto_invited", "2026-11-17")] == 1
    assert len(values) == 5 * 4 and {o.subject_type for o in result.observations} == {"account"}
    assert not result.items and not result.warnings


def test_x_analytics_utf16_export_gives_posts_and_their_counts() -> None:
    assert (DATA / "x_analytics_utf16.csv").read_bytes().startswith(codecs.BOM_UTF16_LE)
    result = collect(context(DATA / "x_analytics_utf16.csv", format="x_analytics"))
    items = {i.external_id: i for i in result.items}
    assert list(items) == ["1861447002198265856", "1861101733400395776", "1860740011862216704"]
    first = items["1861447002198265856"]
    assert (
        first.text == "Forecast accuracy by segment: our Q4 benchmark of 1,200 B2B teams 📈 https://t.co/x1Ab"
    )
    assert first.url == "https://twitter.com/acme/status/1861447002198265856"
    assert first.published_at == datetime(2026, 11, 19, 14, 3, tzinfo=UTC)
    assert (
        items["1861101733400395776"].text
        == 'Webinar: "How RevOps teams choose a forecasting tool" — recording is up'
    )
    assert items["1860740011862216704"].text == "Müller & Søn picked Acme for pipeline reviews.\nCase study ↓"
    values = observed(result)
    assert values[("1861447002198265856", "impressions", None)] == 12210  # "12,210"
    assert values[("1861447002198265856", "reposts", None)] == 14
    assert values[("1861447002198265856", "likes", None)] == 131
    assert values[("1861447002198265856", "url_clicks", None)] == 114
    assert ("1861101733400395776", "media_views", None) not in values  # "-": not reported


def test_custom_mapping_with_semicolons_day_first_dates_and_dotted_thousands() -> None:
    columns = {
        "id": "Post ID",
        "published_at": "Posted",
        "author": "Author",
        "title": "Title",
        "text": "Body",
        "url": "Link",
        "likes": "Reactions",
        "comments": "Comments",
    }
    result = collect(
        context(DATA / "community_posts_custom.csv", format="custom", columns=columns, date_format="%d.%m.%Y")
    )
    items = {i.external_id: i for i in result.items}
    assert items["c-1001"].published_at == datetime(2026, 11, 19, tzinfo=UTC)
    assert (
        items["c-1001"].author_external_id == "Dana Ortiz"
        and items["c-1001"].title == "Which forecasting tool do you use?"
    )
    assert observed(result)[("c-1001", "likes", None)] == 1024  # "1.024"
    assert {a.display_name for a in result.authors} == {"Dana Ortiz", "Acme Team"}


def test_custom_mapping_mistakes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="needs 'columns'"):
        collect(context(DATA / "community_posts_custom.csv", format="custom"))
    with pytest.raises(ConfigError, match="'Likes!' is neither a field"):
        collect(
            context(
                DATA / "community_posts_custom.csv",
                format="custom",
                columns={"id": "Post ID", "Likes!": "Reactions"},
            )
        )
    with pytest.raises(ConfigError, match="'tiktok' is not one of"):
        collect(context(DATA / "community_posts_custom.csv", format="tiktok"))


def test_ga4_referrers_become_referral_rows() -> None:
    result = collect(
        context(DATA / "ga4_landing_pages_by_source.csv", format="web_referrers", site="https://acme.example")
    )
    rows = {(r["referral_date"], r["landing_path"]): r for r in result.referrals}
    assert len(rows) == 4 and not result.items
    hn = rows[("2026-11-18", "/blog/forecasting-benchmark")]
    assert (hn["referrer_host"], hn["sessions"], hn["utm_medium"]) == (
        "news.ycombinator.com",
        412,
        "referral",
    )
    li = rows[("2026-11-19", "/blog/forecasting-benchmark")]
    assert li["sessions"] == 1204  # "1.204", German thousands
    assert (li["utm_source"], li["utm_campaign"], li["referrer_host"]) == (
        "linkedin",
        "q4-benchmark",
        "linkedin.com",
    )
    assert rows[("2026-11-19", "/pricing")]["referrer_url"] is None  # (direct) / (none)
    assert rows[("2026-11-20", "/")]["referrer_url"] is None  # organic search is not a referral
    assert li["imported_from"] == "ga4_landing_pages_by_source.csv"


# --- reading: encodings, delimiters, numbers -----------------------------------------


@pytest.mark.parametrize(
    "encoded",
    [
        b"Date;Total followers\r\n11/20/2026;5\r\n",
        codecs.BOM_UTF8 + b"Date;Total followers\r\n11/20/2026;5\r\n",
        codecs.BOM_UTF16_BE + "Date\tTotal followers\r\n11/20/2026\t5\r\n".encode("utf-16-be"),
        "Date,Total followers\n11/20/2026,5\n".encode("utf-16-le"),  # UTF-16 without a BOM
    ],
)
def test_encodings_and_delimiters(encoded: bytes) -> None:
    table = read_table(encoded, name="x.csv")
    assert table.header == ["Date", "Total followers"]
    assert table.rows == [(2, {"Date": "11/20/2026", "Total followers": "5"})]


def test_the_delimiter_is_the_headers_even_when_quoted_text_is_full_of_others() -> None:
    body = 'Tweet id,Tweet text,time\n1,"a; b; c; d; e",2026-11-19 14:03 +0000\n2,"f; g; h; i",2026-11-19 15:03 +0000\n'
    table = read_table(body.encode(), name="x.csv")
    assert table.header == ["Tweet id", "Tweet text", "time"]
    assert table.rows[0] == (
        2,
        {"Tweet id": "1", "Tweet text": "a; b; c; d; e", "time": "2026-11-19 14:03 +0000"},
    )


def test_windows_1252_is_read_with_a_warning() -> None:
    text, warning = decode("Tweet text\nCaf\u00e9 \u2013 pipeline\n".encode("cp1252"), name="x.csv")
    assert "Café – pipeline" in text and warning == "x.csv: not UTF-8, read as Windows-1252"


def test_numbers() -> None:
    assert [
        parse_number(v) for v in ("1,234", "1.234", "1 234", "12.5", "12,5", "4%", "", "-", "1,234,567.5")
    ] == [1234, 1234, 1234, 12.5, 12.5, 4, None, None, 1234567.5]
    with pytest.raises(ValueError, match="'1k' is not a number"):
        parse_number("1k")


# --- bad input ---------------------------------------------------------------------------


def test_an_unparseable_date_names_the_file_line_and_column() -> None:
    path = DATA / "broken" / "linkedin_followers_bad_date.csv"
    with pytest.raises(ParseError) as caught:
        collect(context(path, format="linkedin_followers"))
    assert f"{path}:4: column 'Date': '11/31/2026' is not a date" in str(caught.value)


def test_an_unparseable_number_names_the_file_line_and_column() -> None:
    path = DATA / "broken" / "x_analytics_bad_number.csv"
    with pytest.raises(
        ParseError, match=r"x_analytics_bad_number.csv:3: column 'impressions': '1k' is not a number"
    ):
        collect(context(path, format="x_analytics"))


def test_a_missing_column_is_named() -> None:
    with pytest.raises(
        ParseError, match=r"x_analytics_no_time.csv:1: missing column\(s\) 'time' \(the header has: Tweet id,"
    ):
        collect(context(DATA / "broken" / "x_analytics_no_time.csv", format="x_analytics"))


def test_line_numbers_count_comment_lines_and_multiline_cells(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        '# report\nTweet id,Tweet text,time,likes\n1,"two\nlines",2026-11-19 14:03 +0000,3\n2,ok,yesterday,1\n'
    )
    with pytest.raises(ParseError, match=r"x.csv:5: column 'time': 'yesterday' is not a date"):
        collect(context(path, format="x_analytics"))


def test_files_are_bounded_and_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"more than max_bytes=100"):
        collect(context(DATA / "x_analytics_utf16.csv", format="x_analytics", max_bytes=100))
    with pytest.raises(FetchError, match="file not found"):
        collect(context(tmp_path / "missing.csv", format="x_analytics"))


def test_a_glob_loads_every_file_skips_a_broken_one_and_a_later_export_wins(tmp_path: Path) -> None:
    for name in ("linkedin_followers_2026-11.csv", "linkedin_followers_2026-12.csv"):
        shutil.copy(DATA / name, tmp_path / name)
    shutil.copy(
        DATA / "broken" / "linkedin_followers_bad_date.csv", tmp_path / "linkedin_followers_2026-10.csv"
    )
    result = collect(
        context(tmp_path / "linkedin_followers_*.csv", format="linkedin_followers", account="acme")
    )
    values = observed(result)
    assert values[("acme", "new_followers", "2026-11-20")] == 18  # the December export corrects November's 17
    assert values[("acme", "new_followers", "2026-11-21")] == 7
    assert ("acme", "new_followers", "2026-10-16") not in values
    assert any(
        "skipped:" in w and "linkedin_followers_2026-10.csv:4: column 'Date'" in w for w in result.warnings
    )
    empty = collect(context(tmp_path / "nothing-*.csv", format="linkedin_followers"))
    assert empty.warnings == [f"no file matches {tmp_path / 'nothing-*.csv'}"]


def test_an_export_served_over_http(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/exports/x.csv").respond_with_data(
        (DATA / "x_analytics_utf16.csv").read_bytes(), content_type="text/csv"
    )
    result = collect(context(httpserver.url_for("/exports/x.csv"), format="x_analytics"))
    assert len(result.items) == 3


def test_sources_file_paths_are_relative_to_its_folder(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    sources = tmp_path / "config" / "sources.yml"
    sources.write_text(
        "sources:\n"
        "  - {name: li, kind: csv, url: 'exports/linkedin-*.csv', format: linkedin_followers}\n"
        "  - {name: x, kind: csv, url: 'file:///srv/x.csv', format: x_analytics}\n"
    )
    config = load_sources(sources)
    assert config.get("li").url == str(tmp_path / "config" / "exports" / "linkedin-*.csv")
    assert config.get("x").url == "file:///srv/x.csv"
    sources.write_text("sources:\n  - {name: li, kind: csv, url: exports/a.csv}\n")
    with pytest.raises(ConfigError, match="field 'format' is required"):
        load_sources(sources)


# --- the real pipeline --------------------------------------------------------------------


def test_followers_reload_never_duplicates_and_keeps_the_exports_days(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    shutil.copy(DATA / "linkedin_followers_2026-11.csv", tmp_path / "exports" / "linkedin-2026-11.csv")
    source = "{name: li, kind: csv, url: 'exports/linkedin-*.csv', format: linkedin_followers, account: acme}"
    _, _, per_day = run_days(engine, tmp_path, source, "acme", [RUN_DATE, RUN_DATE, date(2026, 11, 22)])
    assert per_day == {date(2026, 11, d): 4 for d in range(16, 21)}  # the export's days, never the run's
    shutil.copy(DATA / "linkedin_followers_2026-12.csv", tmp_path / "exports" / "linkedin-2026-12.csv")
    _, _, per_day = run_days(engine, tmp_path, source, "acme", [date(2026, 12, 1)])
    assert per_day == {**{date(2026, 11, d): 4 for d in range(16, 22)}}
    with engine.connect() as conn:
        value = conn.execute(
            select(engagement_observation.c.value).where(
                engagement_observation.c.metric == "new_followers",
                engagement_observation.c.observed_date == date(2026, 11, 20),
            )
        ).scalar_one()
    assert value == 18


def test_x_export_reload_never_duplicates(engine: Engine, tmp_path: Path) -> None:
    source = (
        f"{{name: x, kind: csv, url: '{DATA / 'x_analytics_utf16.csv'}', format: x_analytics, own: true}}"
    )
    items, ours, per_day = run_days(engine, tmp_path, source, "acme", [RUN_DATE, RUN_DATE])
    assert (items, ours) == (3, 3)
    # 3 posts x 9 mapped metrics (impressions ... media views), minus one "-" media views cell
    assert per_day == {RUN_DATE: 3 * 9 - 1}


def test_referrers_are_loaded_into_the_referral_table_once(engine: Engine, tmp_path: Path) -> None:
    path = DATA / "ga4_landing_pages_by_source.csv"
    source = f"{{name: ga4, kind: csv, url: '{path}', format: web_referrers, site: 'https://acme.example'}}"
    items, _, per_day = run_days(engine, tmp_path, source, "acme", [RUN_DATE, RUN_DATE, date(2026, 11, 22)])
    assert items == 0 and per_day == {}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(referral)).scalar_one() == 4
        assert conn.execute(select(func.sum(referral.c.sessions))).scalar_one() == 412 + 1204 + 87 + 35
