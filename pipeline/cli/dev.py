"""`finsent demo | dev`: the zero-setup demo and the local development services (Kafka, PostgreSQL)."""

from __future__ import annotations

import argparse

from pipeline.cli.common import Register, Subparsers
from pipeline.settings import Settings


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.demo.runner import run_demo

    return run_demo(settings, items=args.items)


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.devstack import kafka, postgres
    from pipeline.devstack.config import broker_config, postgres_config

    if args.service == "kafka":
        broker = broker_config(settings, port=args.port)
        if args.action == "start":
            seconds = kafka.start(broker)
            print(f"kafka {kafka.KAFKA_VERSION} ready on {broker.bootstrap} ({seconds:.1f} s)")
        elif args.action == "stop":
            print("kafka stopped" if kafka.stop(broker) else "kafka was not running")
        elif args.action == "fetch":
            print(kafka.fetch_classpath(broker))
        else:
            ready = kafka.is_ready(broker.bootstrap)
            print(f"kafka on {broker.bootstrap}: {'ready' if ready else 'not running'}")
            return 0 if ready else 1
    else:
        pg = postgres_config(settings, port=args.port)
        if args.action == "start":
            postgres.start(pg)
            print(f"postgres ready on 127.0.0.1:{pg.port}")
        elif args.action == "stop":
            print("postgres stopped" if postgres.stop(pg) else "postgres was not running")
        elif args.action == "createdb":
            print(postgres.create_database(pg, args.name))
        else:
            running = postgres.is_running(pg)
            print(f"postgres on 127.0.0.1:{pg.port}: {'running' if running else 'not running'}")
            return 0 if running else 1
    return 0


def add_commands(sub: Subparsers, run: Register) -> None:
    demo = sub.add_parser("demo", help="end-to-end demo on embedded defaults")
    demo.add_argument("--items", type=int, default=2000)
    demo.set_defaults(func=run(cmd_demo))

    dev = sub.add_parser("dev", help="local development services (Kafka, PostgreSQL)")
    dev.add_argument("service", choices=["kafka", "postgres"])
    dev.add_argument("action", choices=["start", "stop", "status", "fetch", "createdb"])
    dev.add_argument("--port", type=int, help="listen port (default from settings)")
    dev.add_argument("--name", default="finsent", help="database name for createdb")
    dev.set_defaults(func=run(cmd_dev))
