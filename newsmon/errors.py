"""One exception hierarchy. Every error names the feed, page or file it is about and what to do next."""

from __future__ import annotations

import errno
import os
from pathlib import Path


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


class InputError(ConfigError):
    """A file or value given to a command (an argument, stdin) cannot be used: missing, a folder, not text. Exit 2
    like a configuration error, but not called one."""


class StorageError(NewsmonError):
    """The warehouse could not be opened or written."""


class WarehouseLocked(StorageError):
    """Another process holds the DuckDB file."""


class AlertError(NewsmonError):
    """An alert could not be delivered."""


class DeliveryFailed(AlertError):
    """The service refused a message or could not be reached (`reason`: what it said, secrets redacted); unlike
    a URL Apprise cannot use, trying again may work."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DISK_FULL_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded", "file too large")
DISK_FULL_ADVICE = "; the disk is full: free some space there and run the command again"


def disk_full(exc: BaseException) -> bool:
    """True when `exc`, or an error it came from, says the disk, a quota or the file-size limit is full
    (ENOSPC, EDQUOT, EFBIG; SQLite's "database or disk is full"; DuckDB's "No space left on device")."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS:
            return True
        if any(word in str(e).lower() for word in _DISK_FULL_WORDS):
            return True
        e = e.__cause__ or e.__context__
    return False


def out_of_space(*paths: str | os.PathLike[str], below: int = 1 << 20) -> bool:
    """True when the file system holding any of `paths` (or its nearest existing folder) has less than `below`
    bytes free: how a "disk I/O error" from SQLite (which does not keep the errno) is told to be a full disk."""
    for path in paths:
        folder = Path(path)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            st = os.statvfs(folder)
        except OSError:
            continue
        if st.f_blocks and st.f_bavail * st.f_frsize < below:  # no blocks at all: /proc, /sys, not a disk
            return True
    return False
