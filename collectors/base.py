"""What a collector receives: its source, the HTTP client and its cursor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from collectors.parsing import parse_inline

if TYPE_CHECKING:
    from collectors.http import HttpClient
    from engage.config import SourceConfig, TeamConfig

Result = TypeVar("Result")


@dataclass
class CollectContext:
    source: SourceConfig
    client: HttpClient
    run_date: date
    etag: str | None = None
    last_modified: str | None = None
    watermark: str | None = None
    team: TeamConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Runs a pure parse function: inline, or on a worker process (collectors.parsing).
    parser: Callable[..., Any] = parse_inline

    def parse(self, fn: Callable[..., Result], /, *args: Any, **kwargs: Any) -> Result:
        """``fn(*args, **kwargs)`` where the run does its parsing (see ``collectors.parsing``)."""
        return self.parser(fn, *args, **kwargs)

    def option(self, name: str, default: Any = None) -> Any:
        return self.source.options.get(name, default)
