"""Messages (pure): short plain-text alerts, and digests as HTML (email) or Markdown (chat).

Everything that comes from a feed (titles, outlet names, snippets, links) is hostile until escaped: control
characters are removed, HTML is escaped for email, Markdown punctuation is escaped for chat, and only
http(s) links are ever rendered as links.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from newsmon.records import AlertRecord, StoryMatch

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~=])")
MAX_OUTLETS_SHOWN = 8


@dataclass(frozen=True)
class Message:
    """What a channel receives: a title, a body and the body's format (text, html or markdown)."""

    title: str
    body: str
    format: str = "text"


def clean(text: str, limit: int) -> str:
    """Single-line, control-character-free, length-capped text for messages."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def md(text: str, limit: int = 300) -> str:
    """Text for chat Markdown: cleaned, then every Markdown/HTML metacharacter backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", clean(text, limit))


def h(text: str, limit: int = 300) -> str:
    """Text for HTML: cleaned and escaped (quotes included, so it is safe in attributes too)."""
    return html.escape(clean(text, limit), quote=True)


def safe_link(url: str) -> str | None:
    """The URL if it is http(s), with characters that could end a Markdown/HTML link percent-encoded."""
    url = clean(url, 1000)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    return quote(url, safe=":/?&=%#;,+@!$'*~-._")


def outlets_line(outlets: Sequence[str]) -> str:
    shown = [clean(o, 60) for o in outlets[:MAX_OUTLETS_SHOWN]]
    more = len(outlets) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "date unknown"


def render_alert(alert: AlertRecord) -> Message:
    """A plain-text alert: what, who carried it, when, why, the link and the idempotency key."""
    if alert.kind != "story":
        return Message("newsmon: " + clean(alert.subject or alert.kind, 150),
                       alert.body + f"\nAlert-Id: {alert.alert_id}")
    outlets = alert.outlets or (alert.source,)
    lines = [
        clean(alert.title or "(untitled)", 300),
        f"Outlets: {outlets_line(outlets)} · {when(alert.published_at)}",
        f"Score: {alert.score:.1f} · labels: {', '.join(alert.labels)} · watchlist: {alert.watchlist}",
        f"Evidence: {clean(', '.join(alert.evidence), 300)}",
        f"Link: {clean(alert.url, 500)}",
        f"Alert-Id: {alert.alert_id}",
    ]
    return Message("newsmon: " + clean(alert.title or alert.url, 150), "\n".join(lines))


def group_by_cluster(stories: Sequence[StoryMatch]) -> list[list[StoryMatch]]:
    """Stories grouped by cluster (one entry per story, whatever the watchlists), best score first."""
    groups: dict[str, list[StoryMatch]] = {}
    for s in stories:
        groups.setdefault(s.cluster_id or s.article_id, []).append(s)
    return sorted(groups.values(), key=lambda g: (-max(s.score for s in g), g[0].title))


def render_digest(stories: Sequence[StoryMatch], *, heading: str, key: str, html_body: bool) -> Message:
    """A digest naming every story (grouped by cluster): HTML for email, Markdown for chat."""
    groups = group_by_cluster(stories)
    title = f"newsmon: {clean(heading, 100)} ({len(groups)} stor{'y' if len(groups) == 1 else 'ies'})"
    body = _digest_html(groups, heading, key) if html_body else _digest_markdown(groups, heading, key)
    return Message(title, body, "html" if html_body else "markdown")


def _digest_markdown(groups: list[list[StoryMatch]], heading: str, key: str) -> str:
    lines = [f"**{md(heading, 100)}**", ""]
    for g in groups:
        top = max(g, key=lambda s: s.score)
        link = safe_link(top.url)
        name = md(top.title or "(untitled)", 160)
        lines.append(f"- {f'[{name}]({link})' if link else name} · score {top.score:.1f} · "
                     f"{md(', '.join(sorted({lb for s in g for lb in s.labels})), 80)}")
        lines.append(f"  {md(outlets_line(top.outlets or (top.source,)), 300)} · {when(top.published_at)}")
        for snip in top.snippets[:2]:
            lines.append(f"  > {md(snip, 200)}")
    lines += ["", f"Digest-Id: {key}"]
    return "\n".join(lines)


def _digest_html(groups: list[list[StoryMatch]], heading: str, key: str) -> str:
    items = []
    for g in groups:
        top = max(g, key=lambda s: s.score)
        link = safe_link(top.url)
        name = h(top.title or "(untitled)", 200)
        head = f'<a href="{html.escape(link, quote=True)}">{name}</a>' if link else name
        labels = h(", ".join(sorted({lb for s in g for lb in s.labels})), 120)
        snippets = "".join(f"<blockquote>{h(s, 300)}</blockquote>" for s in top.snippets[:3])
        items.append(f"<li><p><b>{head}</b><br>score {top.score:.1f} · {labels}<br>"
                     f"{h(outlets_line(top.outlets or (top.source,)), 400)} · {when(top.published_at)}</p>"
                     f"{snippets}</li>")
    return (f"<html><body><h2>{h(heading, 100)}</h2><ol>{''.join(items)}</ol>"
            f"<p style=\"color:#777\">Digest-Id: {h(key, 60)}</p></body></html>")


def render_text_digest(stories: Sequence[StoryMatch], *, heading: str) -> str:
    """The digest as plain text (the terminal, `newsmon digest` without --send)."""
    lines = [clean(heading, 100), ""]
    for n, g in enumerate(group_by_cluster(stories), 1):
        top = max(g, key=lambda s: s.score)
        lines.append(f"{n}. {clean(top.title or '(untitled)', 160)}  [score {top.score:.1f}]")
        lines.append(f"   {outlets_line(top.outlets or (top.source,))} · {when(top.published_at)}")
        lines += [f"   “{clean(s, 200)}”" for s in top.snippets[:2]]
        lines.append(f"   {clean(top.url, 300)}")
    return "\n".join(lines)


def delivery_message(alerts: Sequence[AlertRecord], *, key: str, email: bool) -> Message:
    """The message for one delivery: a single alert as text, several (a storm) as one digest, and a stored
    digest as HTML for email or Markdown for chat."""
    if len(alerts) > 1:
        return render_digest([a.story() for a in alerts], heading="New matching stories", key=key,
                             html_body=email)
    alert = alerts[0]
    if alert.kind == "digest":
        return Message("newsmon: " + clean(alert.subject, 150), alert.body, "html" if email else "markdown")
    return render_alert(alert)
