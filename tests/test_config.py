"""Sources file validation: errors name the file, the source and the field."""

from __future__ import annotations

import pytest

from engage.config import load_sources
from engage.errors import ConfigError


def test_valid_file_loads_with_defaults(write_sources) -> None:  # type: ignore[no-untyped-def]
    path = write_sources(
        """
team: {handles: ["@acme"], domains: [acme.com]}
defaults: {lookback_days: 5}
sources:
  - {name: vendor-blog, kind: rss, url: "https://blog.example.com/feed/", own: true}
  - {name: news, kind: atom, url: "https://news.example.com/atom", enabled: false}
"""
    )
    config = load_sources(path)
    assert [s.name for s in config.enabled()] == ["vendor-blog"]
    assert config.sources[0].own is True
    assert config.sources[0].options["lookback_days"] == 5
    assert config.team.domains == ("acme.com",)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("sources:\n  - {name: a, kind: rss}\n", r"source 'a', field 'url': is required"),
        (
            "sources:\n  - {name: a, kind: gopher, url: 'http://x'}\n",
            r"source 'a', field 'kind': 'gopher' is not one of",
        ),
        (
            "sources:\n  - {name: a, kind: rss, url: 'ftp://x/y'}\n",
            r"source 'a', field 'url': 'ftp://x/y' is not an http",
        ),
        ("sources:\n  - {name: 'bad name!', kind: rss, url: 'http://x'}\n", r"source #1, field 'name'"),
        (
            "sources:\n  - {name: a, kind: rss, url: 'http://x'}\n  - {name: a, kind: rss, url: 'http://y'}\n",
            r"field 'name': is used by two",
        ),
        (
            "sources:\n  - {name: a, kind: rss, url: 'http://x', own: 'yes'}\n",
            r"field 'own': must be true or false",
        ),
        (
            "sources:\n  - {name: a, kind: rss, url: 'http://x', lookbak_days: 3}\n",
            r"source 'a': field 'lookbak_days' is not an option",
        ),
        (
            "sources:\n  - {name: a, kind: rss, url: 'http://x', lookback_days: 'week'}\n",
            r"'lookback_days' has the wrong type",
        ),
        ("sources: []\n", r"'sources' must be a non-empty list"),
        ("sources: [\n", r"not valid YAML"),
        ("team: [1]\nsources:\n  - {name: a, kind: rss, url: 'http://x'}\n", r"team: must be a mapping"),
    ],
)
def test_mistakes_name_file_source_and_field(write_sources, body: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    path = write_sources(body)
    with pytest.raises(ConfigError, match=expected) as info:
        load_sources(path)
    assert str(path) in str(info.value)


def test_missing_file_says_what_to_do(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="sources.example.yml"):
        load_sources(tmp_path / "nope.yml")


def test_example_config_is_valid() -> None:
    from pathlib import Path

    config = load_sources(Path(__file__).resolve().parents[1] / "config" / "sources.example.yml")
    assert len(config.sources) >= 3
