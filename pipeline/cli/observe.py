"""`finsent status | dashboard | report`: what operators look at."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pipeline.cli.common import Register, Subparsers, open_engine
from pipeline.settings import Settings


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.telemetry.status import collect, render

    status = collect(settings, open_engine(settings))
    print(json.dumps(status) if args.json else render(status))
    return 0


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.web import dashboard

    host = args.host or settings.dashboard_host
    port = args.port or settings.dashboard_port
    token = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    dashboard.start(open_engine(settings), host, port, token)
    print(f"dashboard on http://{host}:{port}/" + ("  (token required)" if token else ""), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.rules import parse_duration
    from pipeline.web.report import render

    path = render(
        open_engine(settings),
        Path(args.output),
        since_s=parse_duration(args.since),
        dimension=args.dimension,
        key=args.key or "",
        chromium=settings.chromium,
    )
    print(f"report written to {path}")
    return 0


def add_commands(sub: Subparsers, run: Register) -> None:
    status = sub.add_parser("status", help="throughput, lag, dead letters, models, retrain, alerts")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=run(cmd_status))

    dash = sub.add_parser("dashboard", help="read-only web dashboard")
    dash.add_argument("--host", help="bind address (default FINSENT_DASHBOARD_HOST)")
    dash.add_argument("--port", type=int, help="port (default FINSENT_DASHBOARD_PORT)")
    dash.set_defaults(func=run(cmd_dashboard))
    report = sub.add_parser("report", help="the dashboard's main charts as a PNG or PDF")
    report.add_argument("--since", default="7d", help="period, e.g. 1d, 7d, 30d")
    report.add_argument("--output", required=True, help="report.png or report.pdf")
    report.add_argument("--dimension", choices=["topic", "ticker"], default="topic")
    report.add_argument("--key", help="one topic or ticker (default: all)")
    report.set_defaults(func=run(cmd_report))
