"""bench/collect.py runs end to end on a few sources (its figures are in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("server", ["uvicorn", "threads"])
def test_the_collection_benchmark_runs_on_a_few_sources(tmp_path: Path, server: str) -> None:
    args = ["--sources", "8", "--hosts", "2", "--latency", "0", "--items", "3", "--workers", "4"]
    args += ["--processes", "2", "--server", server, "--workdir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.collect", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "engage, first run" in out and "{'success': 8}" in out
    assert out.count("{'not_modified': 8}") == 4  # three runs with robots.txt cached, one refetched
    assert "baseline, sequential" in out and "WARNING" not in out  # same items as the baseline
    assert "all-304 run (median) / first run:" in out and "calibration after" in out
    assert "requests alone, the hosts split over 2 processes" in out  # every 304 answered in both
    assert "both targets at once need the all-304 run under" in out
