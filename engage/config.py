"""The sources file: which sources to collect, and who "we" are.

```yaml
team:                       # optional: marks our own authors
  handles: ["@acme", "acme_support"]
  domains: ["acme.com"]
defaults:                   # optional, per-source values override these
  lookback_days: 7
sources:
  - name: vendor-blog       # unique; letters, digits, '-', '_' and '.'
    kind: rss               # see collectors.KINDS
    url: https://blog.example.com/feed/
    own: true               # published by our team (default false)
    enabled: true           # default true
    # any other key is an option of that kind's collector
hosts:                      # optional: politeness per host (collectors.politeness)
  "forum.example.com": {requests_per_second: 2, max_concurrency: 2, robots: true}
  "*": {max_concurrency: 4} # every other host
```

Loading validates everything and raises ``ConfigError`` naming the file,
the source and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from engage.errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
BASE_KEYS = {"name", "kind", "url", "own", "enabled"}


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str
    url: str
    own: bool = False
    enabled: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


@dataclass(frozen=True)
class TeamConfig:
    handles: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostConfig:
    """Politeness limits for one host (or ``*``: every host not listed)."""

    requests_per_second: float | None = None
    max_concurrency: int | None = None
    robots: bool | None = None  # None: by kind (see collectors.politeness)


HOST_KEYS = {"requests_per_second": (int, float), "max_concurrency": int, "robots": bool}


@dataclass(frozen=True)
class SourcesConfig:
    path: Path
    sources: tuple[SourceConfig, ...]
    team: TeamConfig = TeamConfig()
    defaults: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    hosts: dict[str, HostConfig] = field(default_factory=dict)

    def enabled(self) -> list[SourceConfig]:
        return [s for s in self.sources if s.enabled]

    def get(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"{self.path}: no source named {name!r}")


def _fail(path: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {message}")


def _str_list(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, where, "must be a list of strings")
    return tuple(value)


def _host_config(path: Path, where: str, raw: Any, *, only_limits: bool = False) -> HostConfig:
    """Validate politeness limits: a ``hosts:`` entry, or (``only_limits``) a
    source's options, where other keys belong to the collector."""
    if not isinstance(raw, dict):
        raise _fail(path, where, f"must be a mapping with {', '.join(HOST_KEYS)}")
    for key, value in raw.items():
        if key not in HOST_KEYS or only_limits and key == "robots":
            if not only_limits:
                raise _fail(
                    path, f"{where}, field {key!r}", f"unknown; the fields are {', '.join(HOST_KEYS)}"
                )
            continue
        if key == "robots":
            if not isinstance(value, bool):
                raise _fail(path, f"{where}, field 'robots'", "must be true or false")
        elif isinstance(value, bool) or not isinstance(value, HOST_KEYS[key]) or value <= 0:
            raise _fail(path, f"{where}, field {key!r}", f"{value!r} is not a positive number")
    return HostConfig(**{k: raw[k] for k in HOST_KEYS if k in raw and not (only_limits and k == "robots")})


def _hosts(path: Path, raw: Any) -> dict[str, HostConfig]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(path, "hosts", "must be a mapping of host name to limits")
    hosts = {}
    for host, limits in raw.items():
        if not isinstance(host, str) or not host.strip():
            raise _fail(path, "hosts", f"{host!r} is not a host name")
        hosts[host.strip().lower()] = _host_config(path, f"hosts.{host}", limits)
    return hosts


def load_sources(path: str | Path) -> SourcesConfig:
    """Read and validate a sources file."""
    from collectors import KINDS, validate_options

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: sources file not found (set ENGAGE_SOURCES or copy "
            "config/sources.example.yml to config/sources.yml)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the sources file: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'sources' list at the top")
    raw_sources = data.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise ConfigError(f"{path}: 'sources' must be a non-empty list")

    team_raw = data.get("team") or {}
    if not isinstance(team_raw, dict):
        raise _fail(path, "team", "must be a mapping with 'handles' and 'domains'")
    team = TeamConfig(
        handles=_str_list(path, "team.handles", team_raw.get("handles")),
        domains=_str_list(path, "team.domains", team_raw.get("domains")),
    )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise _fail(path, "defaults", "must be a mapping")

    sources: list[SourceConfig] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_sources, start=1):
        label = f"source #{index}"
        if not isinstance(raw, dict):
            raise _fail(path, label, "must be a mapping with name, kind and url")
        name = raw.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise _fail(
                path,
                f"{label}, field 'name'",
                f"{name!r} is not a valid name (letters, digits, '-', '_', '.'; at most 200)",
            )
        label = f"source {name!r}"
        if name in seen:
            raise _fail(path, f"{label}, field 'name'", "is used by two sources")
        seen.add(name)
        kind = raw.get("kind")
        if kind not in KINDS:
            raise _fail(
                path,
                f"{label}, field 'kind'",
                f"{kind!r} is not one of {', '.join(sorted(KINDS))}",
            )
        url = raw.get("url")
        if not isinstance(url, str) or not url.strip():
            raise _fail(path, f"{label}, field 'url'", "is required")
        url = url.strip()
        parts = urlsplit(url)
        if kind == "csv":
            if parts.scheme not in ("", "file", "http", "https"):
                raise _fail(path, f"{label}, field 'url'", f"{url!r} is not a file path or URL")
            if not parts.scheme and not Path(url).expanduser().is_absolute():
                url = str(path.parent / url)  # a path relative to the sources file's folder
        elif parts.scheme not in ("http", "https") or not parts.netloc:
            raise _fail(path, f"{label}, field 'url'", f"{url!r} is not an http(s) URL")
        for flag in ("own", "enabled"):
            if flag in raw and not isinstance(raw[flag], bool):
                raise _fail(path, f"{label}, field '{flag}'", "must be true or false")
        options = {**defaults, **{k: v for k, v in raw.items() if k not in BASE_KEYS}}
        try:
            validate_options(kind, options)
        except ConfigError as exc:
            raise _fail(path, label, str(exc)) from None
        _host_config(path, label, options, only_limits=True)
        sources.append(
            SourceConfig(
                name=name,
                kind=kind,
                url=url,
                own=bool(raw.get("own", False)),
                enabled=bool(raw.get("enabled", True)),
                options=options,
            )
        )
    extra = {k: v for k, v in data.items() if k not in ("sources", "team", "defaults", "hosts")}
    return SourcesConfig(
        path=path,
        sources=tuple(sources),
        team=team,
        defaults=defaults,
        extra=extra,
        hosts=_hosts(path, data.get("hosts")),
    )
