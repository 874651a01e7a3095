"""What a collector receives: its source, the HTTP client and its cursor."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collectors.http import HttpClient
    from engage.config import SourceConfig, TeamConfig


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

    def option(self, name: str, default: Any = None) -> Any:
        return self.source.options.get(name, default)
