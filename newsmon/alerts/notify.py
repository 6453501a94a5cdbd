"""Delivery through Apprise: one URL, one message, success checked (Apprise returns False on failure)."""

from __future__ import annotations

import logging

import apprise

from newsmon.alerts.policy import Channel, redact_url
from newsmon.errors import AlertError


class AppriseNotifier:
    """Sends a (title, body) to one Apprise URL; raises AlertError naming the channel (redacted)."""

    def send(self, channel: Channel, title: str, body: str) -> None:
        ap = apprise.Apprise()
        if not ap.add(channel.url):
            raise AlertError(f"{redact_url(channel.url)}: not a valid Apprise URL; fix [alerts] urls "
                             "(see https://github.com/caronc/apprise/wiki)")
        # Apprise logs failures at WARNING with the URL's host only; keep them but never the secret URL.
        logging.getLogger("apprise").setLevel(logging.ERROR)
        if not ap.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT):
            raise AlertError(f"{channel.name}: delivery failed; newsmon retries on the next run")
