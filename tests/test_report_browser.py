"""The reports opened in a real headless Chromium (Debian's package), driven over CDP by Playwright.

Each page must render with no console error, no dialog (collected text holds
``alert()`` calls), no request to anything but the file itself, and charts of
a visible size. Screenshots are saved under ``test-artifacts/`` for people to
look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engage.reports.config import ReportConfig, Target
from engage.reports.daily import write_reports
from tests.test_reports import D, build_known_warehouse

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium: the one installed, else installed once with apt-get when we are root."""
    path = _find_chromium()
    if path is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("chromium is not installed and cannot be (apt-get needs root)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        proc = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
            proc = subprocess.run(
                ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
        path = _find_chromium()
        if path is None:
            pytest.skip(f"chromium could not be installed: {proc.stderr.strip()[-300:]}")
    return path


def test_reports_render_in_chromium_with_no_outside_request(
    chromium: str, sqlite_engine: Engine, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package drives Chromium")
    build_known_warehouse(sqlite_engine, tmp_path)
    config = ReportConfig(targets={"our_replies": Target(5)})
    result = write_reports(sqlite_engine, D, tmp_path / "reports", config)
    ARTIFACTS.mkdir(exist_ok=True)
    pages = {
        "prospects.html": 1,
        "prospects-kim-closer.html": 1,
        "kpis.html": 3,
        "alerts.html": 0,
        "index.html": 0,
    }
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            page = context.new_page()
            requests: list[str] = []
            problems: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            for name, min_charts in pages.items():
                url = (result.folder / name).as_uri()
                requests.clear()
                page.goto(url, wait_until="load", timeout=15_000)
                assert page.title(), name
                boxes = [svg.bounding_box() for svg in page.query_selector_all("figure.chart svg")]
                assert len(boxes) >= min_charts, name
                assert all(b and b["width"] > 50 and b["height"] > 20 for b in boxes), (name, boxes)
                assert requests == [url], (name, requests)  # the page itself, nothing else
                page.screenshot(
                    path=str(ARTIFACTS / f"report-{name.replace('.html', '')}.png"), full_page=True
                )
            page.goto((result.folder / "prospects.html").as_uri())
            text = page.inner_text("body")
            assert '<script>alert("x")</script>' in text and "<b>bold</b>" in text  # shown, never run
            assert page.evaluate("document.scripts.length") == 0
        finally:
            context.close()
    assert problems == []
    assert (ARTIFACTS / "report-prospects.png").stat().st_size > 10_000
