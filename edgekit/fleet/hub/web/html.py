"""Small HTML helpers: every page is a string built here, every value from a device escaped on the way in.

No template engine (no new dependency) and no JavaScript needed: the pages refresh with a meta
tag and the charts are inline SVG (:mod:`.charts`), so they show in any browser, offline.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from urllib.parse import quote

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:baseline}
header a{color:#cfe0ff;text-decoration:none}header strong{font-size:16px}
main{padding:16px 20px}h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:18px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e6eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.on{color:#187a3a;font-weight:600}.off{color:#a11;font-weight:600}
.ok{color:#187a3a}.warn{color:#a86b00;font-weight:600}.alert,.raised{color:#b00020;font-weight:600}
.muted{color:#6b7280}.charts{display:flex;flex-wrap:wrap;gap:12px}
.chart{background:#fff;border:1px solid #e3e6eb}form{margin:0 0 12px;display:flex;gap:8px;align-items:end}
label{display:flex;flex-direction:column;font-size:12px}code,pre{font-size:12px}
pre{white-space:pre-wrap;max-width:640px;margin:0}.thumb{position:relative;display:inline-block}
.thumb svg{position:absolute;left:0;top:0}.error{background:#fde8e8;padding:8px;border:1px solid #b00020}
"""


def esc(value: object) -> str:
    """``value`` as text safe in HTML content and in quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, *, refresh_s: int | None = None) -> str:
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\">{refresh}<title>{esc(title)} · EdgeKit hub</title>"
            f"<style>{CSS}</style></head><body><header><strong>EdgeKit hub</strong><a href=\"/\">Fleet</a>"
            "<a href=\"/events\">Events</a><a href=\"/alerts\">Alerts</a><a href=\"/openapi.json\">API</a>"
            f"</header><main>{body}</main></body></html>")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: frozenset[int] = frozenset(),
          empty: str = "nothing yet") -> str:
    """A table of cells that are already HTML (escape values with :func:`esc` first)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="muted">{esc(empty)}</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def device_link(device_id: str) -> str:
    return f'<a href="/devices/{esc(quote(device_id, safe=""))}">{esc(device_id)}</a>'


NONE = '<span class="muted">&ndash;</span>'
"""What a cell shows when there is no value."""


def number(value: float | int | None, digits: int = 1) -> str:
    return NONE if value is None else esc(f"{value:.{digits}f}")


def when(ts: float | None) -> str:
    """A Unix time as UTC text, in a <time> element."""
    if ts is None:
        return '<span class="muted">never</span>'
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return f'<time datetime="{esc(moment.isoformat())}">{esc(moment.strftime("%Y-%m-%d %H:%M:%S"))} UTC</time>'


def ago(ts: float | None, now: float | None = None) -> str:
    """How long ago, in words ("12 s ago"), with the exact time in the title."""
    if ts is None:
        return '<span class="muted">never</span>'
    seconds = max(0.0, (time.time() if now is None else now) - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            text = f"{seconds / size:.0f} {unit} ago"
            break
    else:
        text = f"{seconds:.0f} s ago"
    exact = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<span title="{esc(exact)}">{esc(text)}</span>'


def state(value: str | None) -> str:
    """A drift or alert state, coloured by its class."""
    if value is None:
        return NONE
    return f'<span class="{esc(value)}">{esc(value)}</span>'
