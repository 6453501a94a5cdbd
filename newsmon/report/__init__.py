"""The analysts' report: one self-contained HTML page of the period's matching stories, trends and feed health.

    build_report(settings, since=timedelta(days=7), out=Path("report.html")) -> Path

reads the warehouse read-only (short connections, like `newsmon sql`), draws the chart at build time and
writes the page atomically (a web server never serves half a file). The page loads nothing from the network.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsmon.config import Settings

DEFAULT_SINCE = timedelta(days=7)


def build_report(settings: Settings, since: timedelta = DEFAULT_SINCE, out: Path = Path("report.html"), *,
                 now: datetime | None = None) -> Path:
    """Write the report for stories seen in the last `since` to `out`; returns the path written."""
    from newsmon.report.chart import matches_chart
    from newsmon.report.data import load_report
    from newsmon.report.render import render_report
    from warehouse import open_reader

    now = now or datetime.now(UTC)
    reader = open_reader(settings.warehouse)
    try:
        data = load_report(reader, start=now - since, now=now)
    finally:
        reader.close()
    svg = matches_chart(data.days, data.per_label, data.per_source, [d for d, _ in data.spikes])
    page = render_report(data, svg, title=f"newsmon report: {settings.name}")
    return write_atomically(Path(out), page)


def write_atomically(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)  # a full disk leaves no empty or partial temporary file behind
        if isinstance(exc, OSError) and exc.filename is None:  # name the report, not an anonymous descriptor
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    return path
