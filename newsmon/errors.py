"""One exception hierarchy. Every error names the feed, page or file it is about and what to do next."""

from __future__ import annotations


class NewsmonError(Exception):
    """Base class of every error newsmon raises on purpose."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(f"{url}: {message}" if url else message)


class ConfigError(NewsmonError):
    """The configuration file is missing, unreadable or invalid."""


class RulesError(NewsmonError):
    """A tagging rules file is invalid."""


class FetchError(NewsmonError):
    """A feed or page could not be fetched (network, HTTP status, size, blocked address)."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None,
                 retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message, url=url)


class BlockedURLError(FetchError):
    """The URL points at a private/loopback address or uses a scheme other than http(s)."""


class FeedParseError(NewsmonError):
    """The bytes fetched from a feed URL are not a usable feed."""


class ExtractionError(NewsmonError):
    """Article text could not be extracted from a page."""


class ExtractionEmpty(ExtractionError):
    """The extractor found no article text on the page."""


class StorageError(NewsmonError):
    """The warehouse could not be opened or written."""


class WarehouseLocked(StorageError):
    """Another process holds the DuckDB file."""


class AlertError(NewsmonError):
    """An alert could not be delivered."""
