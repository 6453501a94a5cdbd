"""Delivery through Apprise: one URL, one message, success checked (Apprise returns False on failure).

Every message carries its idempotency key (the ledger's alert id, or a digest's key) so a receiver can drop a
repeat after a crash between send and mark: in the body (`Alert-Id:` / `Digest-Id:`) for every service, and
for services where Apprise lets a URL add them, as a header (`Idempotency-Key` on json/form/xml webhooks,
`X-Newsmon-Alert-Id` on email) and as a JSON payload field (`idempotency_key` on json://).
"""

from __future__ import annotations

import logging
from typing import Protocol
from urllib.parse import quote, urlsplit

import apprise

from newsmon.alerts.policy import Channel, redact_url
from newsmon.errors import AlertError

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
    scheme = urlsplit(url).scheme.lower()
    k = quote(key, safe="")
    if scheme in ("json", "jsons"):
        extra = f"+{KEY_HEADER}={k}&:{KEY_FIELD}={k}"
    elif scheme in ("form", "forms", "xml", "xmls"):
        extra = f"+{KEY_HEADER}={k}"
    elif scheme in ("mailto", "mailtos"):
        extra = f"+{EMAIL_KEY_HEADER}={k}"
    else:
        return url
    base, sep, fragment = url.partition("#")
    return base + ("&" if "?" in base else "?") + extra + sep + fragment


class AppriseNotifier:
    """Sends a (title, body) to one Apprise URL; raises AlertError naming the channel (redacted)."""

    def send(self, channel: Channel, title: str, body: str, *, key: str | None = None,
             body_format: str = "text") -> None:
        ap = apprise.Apprise()
        if not ap.add(keyed_url(channel.url, key) if key else channel.url):
            raise AlertError(f"{redact_url(channel.url)}: not a valid Apprise URL; fix the alert URLs in the "
                             "configuration (see https://github.com/caronc/apprise/wiki)")
        # Apprise logs failures at WARNING with the URL's host only; keep them but never the secret URL.
        logging.getLogger("apprise").setLevel(logging.ERROR)
        if not ap.notify(title=title, body=body, body_format=_FORMATS[body_format]):
            raise AlertError(f"{channel.name}: delivery failed; newsmon retries on a later run")
