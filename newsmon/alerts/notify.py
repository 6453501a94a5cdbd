"""Delivery through Apprise: one URL, one message, success checked (Apprise returns False on failure).

Every message carries its idempotency key (the ledger's alert id, or a digest's key) so a receiver can drop a
repeat after a crash between send and mark: in the body (`Alert-Id:` / `Digest-Id:`) for every service, and
for services where Apprise lets a URL add them, as a header (`Idempotency-Key` on json/form/xml webhooks,
`X-Newsmon-Alert-Id` on email) and as a JSON payload field (`idempotency_key` on json://).

Alert URLs are checked by Apprise itself when a sending command loads the config (`url_problem`, passed to
`load_settings` as its URL check: the config module stays free of Apprise). Secrets stay out of library logs:
every URL Apprise is given is registered with a logging filter on Apprise's (and urllib3's) loggers that
rewrites each record with the URL redacted and its secret parts as `***`.

Apprise's notify() says only whether a message went; why it did not is in Apprise's log records. A send
collects them (after redaction) and a failure carries the service's own reason ("error=500", "Connection
refused"), which the ledger's `last_error`, the run's summary and `newsmon alerts test` all show.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import quote

import apprise

from newsmon.alerts.policy import EMAIL_SCHEMES, Channel, redact_url, scrub, url_scheme
from newsmon.errors import AlertError, DeliveryFailed

KEY_HEADER = "Idempotency-Key"
KEY_FIELD = "idempotency_key"
EMAIL_KEY_HEADER = "X-Newsmon-Alert-Id"
_FORMATS = {"text": apprise.NotifyFormat.TEXT, "html": apprise.NotifyFormat.HTML,
            "markdown": apprise.NotifyFormat.MARKDOWN}


class Notifier(Protocol):
    def send(self, channel: Channel, title: str, body: str, *, key: str | None = None,
             body_format: str = "text") -> None: ...


def keyed_url(url: str, key: str) -> str:
    """The Apprise URL with the idempotency key added as a header / payload field where the service allows."""
    scheme = url_scheme(url)
    k = quote(key, safe="")
    if scheme in ("json", "jsons"):
        extra = f"+{KEY_HEADER}={k}&:{KEY_FIELD}={k}"
    elif scheme in ("form", "forms", "xml", "xmls"):
        extra = f"+{KEY_HEADER}={k}"
    elif scheme in EMAIL_SCHEMES:
        extra = f"+{EMAIL_KEY_HEADER}={k}"
    else:
        return url
    base, sep, fragment = url.partition("#")
    return base + ("&" if "?" in base else "?") + extra + sep + fragment


class _RedactSecrets(logging.Filter):
    """Rewrites a library's log record with every registered alert URL redacted and its secret parts as '***'
    (Apprise logs a URL it cannot load whole, e.g. "Could not load Discord URL: discord://<token>")."""

    def __init__(self) -> None:
        super().__init__("")
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.urls:
            return True
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: keep what can be shown
            text = str(record.msg)
        record.msg, record.args = scrub(text, self.urls), None
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info), self.urls)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, self.urls)
        return True


_REDACT = _RedactSecrets()
LIBRARY_LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager",
                   "urllib3.util.retry")


def hide_in_logs(urls: Iterable[str]) -> None:
    """Register alert URLs whose secrets must never appear in Apprise's or urllib3's log records."""
    _REDACT.urls.update(u for u in urls if u)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).addFilter(_REDACT)  # once: a filter already there is not added again


def url_problem(url: str) -> str | None:
    """None when Apprise can use `url` (as configured, and with an idempotency key added), else why not, with
    the URL redacted. The check for `load_settings(..., check_url=url_problem)`: parsing only, no network."""
    if not url.strip():
        return "the URL is empty (a ${VAR} that is set but empty?)"
    hide_in_logs([url])
    try:
        usable = all(apprise.Apprise().add(u) for u in (url, keyed_url(url, "check")))
    except Exception:  # Apprise's own parsing failed in a way it did not catch: the URL is not usable either
        usable = False
    if usable:
        return None
    return (f"{redact_url(url)} is not a URL Apprise can use; check the service's URL format "
            "(https://github.com/caronc/apprise/wiki) and %-encode characters such as @ : / ? # [ ] in "
            "passwords and tokens (] is %5D)")


class _Collect(logging.Filter):
    """Keeps what Apprise logs during one send (already redacted by _REDACT, which runs first) and, below
    ERROR, keeps it from other handlers: Apprise's warnings are reported as the failure's reason instead."""

    def __init__(self) -> None:
        super().__init__("")
        self.records: list[tuple[int, str]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self.records.append((record.levelno, record.getMessage()))
        except Exception:  # a record whose arguments do not fit its format
            self.records.append((record.levelno, str(record.msg)))
        return record.levelno >= logging.ERROR


_ERRNO = re.compile(r"\[Errno -?\d+\] [^\"'()\[\]]+")
_SEND_LOCK = threading.Lock()  # one send at a time collects Apprise's (process-wide) log records
MAX_REASON = 300


def failure_reason(records: Iterable[tuple[int, str]]) -> str:
    """The service's reason for a failed send, from Apprise's log records (level, message): its warnings and
    errors ("Failed to send JSON POST notification: Internal server error., error=500."), plus the socket
    error it logs in detail ("[Errno 111] Connection refused"); one line of at most MAX_REASON characters."""
    records = list(records)
    said = [m for level, m in records if level >= logging.WARNING]
    socket = [m.partition(":")[2] for level, m in records if level < logging.WARNING
              and m.startswith("Socket Exception:")]
    detail = [(found.group(0) if (found := _ERRNO.search(m)) else m).strip() for m in socket]
    text = " ".join(" ".join([*said, *(f"({d})" for d in detail if d)]).split())
    if not text:
        return "the service gave no reason (Apprise logged none)"
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 1] + "…"


class AppriseNotifier:
    """Sends a (title, body) to one Apprise URL; raises AlertError naming the channel (redacted), also when
    Apprise itself raises: a channel that fails fails alone. A refused or unreachable service raises
    DeliveryFailed with the service's own reason (redacted): `<channel>: delivery failed: <reason>`."""

    def send(self, channel: Channel, title: str, body: str, *, key: str | None = None,
             body_format: str = "text") -> None:
        hide_in_logs([channel.url])  # the keyed URL holds it whole, plus a key that is no secret
        url = keyed_url(channel.url, key) if key else channel.url
        collect = _Collect()
        log = logging.getLogger("apprise")
        with _SEND_LOCK:
            log.addFilter(collect)  # after _REDACT: it sees the records with their secrets replaced
            log.setLevel(logging.DEBUG)  # the socket error's detail is logged at DEBUG
            try:
                ap = apprise.Apprise()
                if not ap.add(url):
                    raise AlertError(f"{channel.name}: not a valid Apprise URL; fix the alert URLs in the "
                                     "configuration (see https://github.com/caronc/apprise/wiki)")
                sent = ap.notify(title=title, body=body, body_format=_FORMATS[body_format])
            except AlertError:
                raise
            except Exception as exc:  # a bug or an odd URL inside Apprise: this channel fails, nothing else
                reason = " ".join(scrub(f"{type(exc).__name__} in Apprise: {exc}", [channel.url, url]).split())
                reason = reason[:MAX_REASON]
                raise DeliveryFailed(f"{channel.name}: delivery failed: {reason}", reason=reason) from None
            finally:
                log.setLevel(logging.ERROR)  # outside a send, Apprise's warnings stay quiet
                log.removeFilter(collect)
        if not sent:
            reason = scrub(failure_reason(collect.records), [channel.url, url])
            raise DeliveryFailed(f"{channel.name}: delivery failed: {reason}", reason=reason)
