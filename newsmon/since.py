"""`--since`, one meaning for every command: a duration back from now (30m, 6h, 24h, 7d, 2w) or a date or
date-time (2026-11-01, 2026-11-01T12:00, 2026-11-01T12:00+04:00; UTC when it has no zone). Pure: no clock
is read here, the caller passes `now`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", re.IGNORECASE)
EXPECTED = ("expected a duration like 30m, 6h, 24h, 7d or 2w, or a date or time like 2026-11-01 or "
            "2026-11-01T12:00 (UTC unless it names a zone)")


@dataclass(frozen=True)
class Since:
    """Where a `--since` period starts: `duration` before now, or at `moment` (in UTC)."""

    text: str
    duration: timedelta | None = None
    moment: datetime | None = None

    def start(self, now: datetime) -> datetime:
        """The first moment the period covers."""
        return now - self.duration if self.duration is not None else self.moment or now

    def period(self, now: datetime) -> timedelta:
        """How long the period is, up to `now` (none for a moment after `now`)."""
        return self.duration if self.duration is not None else max(now - self.start(now), timedelta(0))


def parse_since(text: str) -> Since:
    """A `--since` value; ValueError with the accepted forms for anything else."""
    m = _DURATION.fullmatch(text or "")
    if m:
        seconds = float(m.group(1)) * _UNITS[m.group(2).lower()]
        if seconds <= 0:
            raise ValueError(f"{text!r}: a duration must be more than 0; {EXPECTED}")
        return Since(text, duration=timedelta(seconds=seconds))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r}: {EXPECTED}") from None
    return Since(text, moment=when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC))
