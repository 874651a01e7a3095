"""One exception hierarchy for the whole project, rooted at EngageError."""

from __future__ import annotations


class EngageError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(EngageError):
    """The sources file or a setting is wrong; the message names where."""


class FetchError(EngageError):
    """A request to a source failed after retries."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        super().__init__(f"{reason} ({url})")


class ResponseTooLarge(FetchError):
    """The body was larger than the configured cap."""


class ParseError(EngageError):
    """A response could not be read; the message names the page and what was missing."""


class WarehouseError(EngageError):
    """The warehouse is missing, unreachable or at the wrong schema version."""


class ModelError(EngageError):
    """A model artifact is missing, untrusted or incompatible."""


class DataQualityError(EngageError):
    """A data-quality check found data that is wrong (not merely unusual)."""
