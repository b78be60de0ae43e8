"""`finsent alerts ...`: rules, silences, the alert list, and one scan on demand."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from getpass import getuser
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.db.schema import utcnow
from connectors.errors import UserInputError
from pipeline.cli.common import open_engine
from pipeline.settings import Settings


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UserInputError(f"not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    from alerts import rules

    engine = open_engine(settings)
    if args.action == "list":
        for rule in rules.current_rules(engine):
            state = "enabled " if rule.enabled else "disabled"
            print(
                f"{rule.name:28} {state} {rule.dimension}/{rule.metric} {rule.detector} "
                f"fire>={rule.fire_above:g} resolve<{rule.resolve_below:g} bucket={rule.bucket_s:g}s "
                f"min_volume={rule.min_volume} {rule.severity} -> {','.join(rule.receivers)}"
            )
    elif args.action == "show":
        found = [r for r in rules.current_rules(engine) if r.name == args.name]
        if not found:
            raise rules.RuleError(f"no rule named {args.name!r}")
        print(json.dumps(found[0].to_spec(), indent=2))
    elif args.action == "add":
        added = rules.read_rules_file(Path(args.file))
        for rule in added:
            rules.upsert_rule(engine, rule)
        print(f"stored {len(added)} rule(s): {', '.join(r.name for r in added)}")
    else:
        rule = rules.set_enabled(engine, args.name, args.action == "enable")
        print(f"{rule.name}: {'enabled' if rule.enabled else 'disabled'}")
    return 0


def cmd_silence(args: argparse.Namespace, settings: Settings) -> int:
    from alerts import silences
    from alerts.rules import parse_duration

    engine = open_engine(settings)
    matchers = [silences.parse_matcher(m) for m in args.match or []]
    duration = timedelta(seconds=parse_duration(args.duration))
    start = _parse_time(args.start) or utcnow()
    silence_id = silences.create(
        engine,
        matchers,
        duration,
        comment=args.comment or "",
        created_by=args.by or getuser(),
        starts_at=start,
    )
    print(f"silence {silence_id} from {start:%Y-%m-%d %H:%M} until {start + duration:%Y-%m-%d %H:%M} UTC")
    return 0


def cmd_silences(args: argparse.Namespace, settings: Settings) -> int:
    from alerts import silences

    engine = open_engine(settings)
    if args.action == "expire":
        silences.expire(engine, args.id)
        print(f"silence {args.id} expired")
        return 0
    for row in silences.listing(engine, include_expired=args.all):
        text = " ".join(f"{m['label']}{m['op']}{m['value']}" for m in row.matchers)
        print(
            f"{row.id:5} {row.starts_at:%Y-%m-%d %H:%M} → {row.ends_at:%Y-%m-%d %H:%M} {text}  {row.comment}"
        )
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.db.schema import Alert

    engine = open_engine(settings)
    query = select(Alert).order_by(Alert.id.desc()).limit(args.limit)
    if args.state == "open":
        query = query.where(Alert.state.in_(("pending", "firing")))
    elif args.state != "all":
        query = query.where(Alert.state == args.state)
    with Session(engine) as session:
        rows = list(session.scalars(query))
    if args.json:
        for row in rows:
            print(json.dumps(_alert_dict(row), default=str))
        return 0
    if not rows:
        print(f"no {args.state} alerts")
    for row in rows:
        print(
            f"#{row.id:<5} {row.state:9} {row.severity:8} {row.rule:24} {row.dimension}={row.series_key:12} "
            f"score {row.score:5.1f} (peak {row.peak_score:.1f}) "
            f"since {row.started_at:%Y-%m-%d %H:%M}  {row.summary}"
        )
    return 0


def _alert_dict(row: Any) -> dict[str, Any]:
    return {
        column: getattr(row, column)
        for column in (
            "id",
            "rule",
            "dimension",
            "series_key",
            "metric",
            "state",
            "severity",
            "score",
            "peak_score",
            "value",
            "summary",
            "started_at",
            "fired_at",
            "resolved_at",
            "notified_state",
        )
    }


def cmd_scan(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.jobs.alert_scan import run_alert_cycle, run_scan

    engine = open_engine(settings)
    now = _parse_time(args.at)
    if args.no_deliver:
        print(json.dumps(run_scan(settings, engine, now).as_dict()))
    else:
        print(json.dumps(run_alert_cycle(settings, engine, now)))
    return 0


def cmd_deliver(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.outbox import counts
    from pipeline.jobs.alert_scan import run_delivery

    engine = open_engine(settings)
    report = run_delivery(settings, engine)
    print(
        json.dumps(
            {
                "delivered": report.delivered,
                "deferred": report.deferred,
                "failed": report.failed,
                "outbox": counts(engine),
            }
        )
    )
    return 0


def add_commands(sub: Any, run: Any) -> None:
    alerts = sub.add_parser("alerts", help="anomaly alerts: rules, silences, list, scan")
    actions = alerts.add_subparsers(dest="command", required=True)

    rules = actions.add_parser("rules", help="alert rules (data, not code)").add_subparsers(
        dest="action", required=True
    )
    rules.add_parser("list", help="every rule and its state").set_defaults(func=run(cmd_rules))
    show = rules.add_parser("show", help="one rule as YAML-ready JSON")
    show.add_argument("name")
    show.set_defaults(func=run(cmd_rules))
    add = rules.add_parser("add", help="add or replace rules from a YAML file")
    add.add_argument("file")
    add.set_defaults(func=run(cmd_rules))
    for action in ("enable", "disable"):
        parser = rules.add_parser(action, help=f"{action} a rule")
        parser.add_argument("name")
        parser.set_defaults(func=run(cmd_rules))

    silence = actions.add_parser("silence", help="withhold notifications of matching alerts for a while")
    silence.add_argument(
        "--match", action="append", help="label=value, label!=value or label=~regex (repeat)"
    )
    silence.add_argument("--for", dest="duration", default="2h", help="e.g. 30m, 2h, 1d")
    silence.add_argument("--start", help="ISO time it starts (default now)")
    silence.add_argument("--comment")
    silence.add_argument("--by", help="who asks for it")
    silence.set_defaults(func=run(cmd_silence))

    silences = actions.add_parser("silences", help="list or expire silences").add_subparsers(
        dest="action", required=True
    )
    listing = silences.add_parser("list", help="active (and with --all, ended) silences")
    listing.add_argument("--all", action="store_true")
    listing.set_defaults(func=run(cmd_silences))
    expire = silences.add_parser("expire", help="end a silence now")
    expire.add_argument("id", type=int)
    expire.set_defaults(func=run(cmd_silences))

    show_list = actions.add_parser("list", help="alerts, newest first")
    show_list.add_argument(
        "--state", default="open", choices=["open", "pending", "firing", "resolved", "cancelled", "all"]
    )
    show_list.add_argument("--limit", type=int, default=50)
    show_list.add_argument("--json", action="store_true", help="one JSON object per line")
    show_list.set_defaults(func=run(cmd_list))

    scan = actions.add_parser("scan", help="run one anomaly scan (and deliver) now")
    scan.add_argument("--at", help="evaluate at this ISO time instead of now (replays history)")
    scan.add_argument("--no-deliver", action="store_true", help="queue notifications without sending")
    scan.set_defaults(func=run(cmd_scan))

    actions.add_parser("deliver", help="send due notifications from the outbox").set_defaults(
        func=run(cmd_deliver)
    )
