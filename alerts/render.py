"""What a notification says: subject, plain text and HTML, from the outbox payload.

The payload (built by the scan) is the single source: the webhook sends it as JSON, email renders
it here. Everything from the data is escaped in HTML.
"""

from __future__ import annotations

from html import escape
from typing import Any


def subject(payload: dict[str, Any]) -> str:
    alerts = payload.get("alerts", [])
    firing = [a for a in alerts if a.get("state") == "firing"]
    status = f"FIRING:{len(firing)}" if firing else "RESOLVED"
    keys = ", ".join(dict.fromkeys(str(a.get("key")) for a in alerts))
    if len(keys) > 80:
        keys = keys[:77] + "..."
    rules = ", ".join(dict.fromkeys(str(a.get("rule")) for a in alerts))
    return f"[finsent {status}] {rules} ({keys})"


def _line(alert: dict[str, Any]) -> str:
    when = alert.get("resolved_at") if alert.get("state") == "resolved" else alert.get("fired_at")
    return (
        f"- [{str(alert.get('state')).upper()}] {alert.get('severity')} {alert.get('rule')} "
        f"{alert.get('dimension')}={alert.get('key')}: {alert.get('summary')} "
        f"(since {when}; alert #{alert.get('id')})"
    )


def text_body(payload: dict[str, Any]) -> str:
    alerts = payload.get("alerts", [])
    lines = [
        f"finsent: {len(alerts)} alert(s) in group {payload.get('group_key')}",
        f"generated at {payload.get('generated_at')}",
        "",
        *(_line(alert) for alert in alerts),
        "",
        "Query them with SQL: SELECT * FROM alerts WHERE id IN ("
        + ", ".join(str(a.get("id")) for a in alerts)
        + ");",
    ]
    return "\n".join(lines) + "\n"


def html_body(payload: dict[str, Any]) -> str:
    rows = []
    for alert in payload.get("alerts", []):
        state = str(alert.get("state"))
        colour = "#b00020" if state == "firing" else "#2e7d32"
        cells = [
            f'<td style="color:{colour};font-weight:bold">{escape(state.upper())}</td>',
            f"<td>{escape(str(alert.get('severity')))}</td>",
            f"<td>{escape(str(alert.get('rule')))}</td>",
            f"<td>{escape(str(alert.get('dimension')))}={escape(str(alert.get('key')))}</td>",
            f"<td>{escape(str(alert.get('summary')))}</td>",
            f"<td>#{escape(str(alert.get('id')))}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(
        f"<th align=left>{h}</th>" for h in ("State", "Severity", "Rule", "Series", "What", "Alert")
    )
    return (
        '<!doctype html><html><body style="font-family:sans-serif">'
        f"<h2>{escape(subject(payload))}</h2>"
        f"<p>Generated at {escape(str(payload.get('generated_at')))}.</p>"
        f'<table cellpadding=4 style="border-collapse:collapse"><tr>{header}</tr>{"".join(rows)}</table>'
        "</body></html>"
    )
