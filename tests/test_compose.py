"""docker-compose.yml checked statically (no Docker engine here): structure, versions, health."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.devstack.kafka import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_dependencies_are_consistent() -> None:
    compose = _compose()
    services = compose["services"]
    assert {
        "kafka",
        "postgres",
        "migrate",
        "worker",
        "worker-gpu",
        "ingest",
        "scheduler",
        "train",
        "scraper",
    } <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for volume in service.get("volumes", []):
            named = volume.split(":")[0]
            if not named.startswith((".", "/")):
                assert named in compose["volumes"], f"{name} uses undeclared volume {named}"


def test_kafka_image_matches_the_local_broker_version() -> None:
    assert _compose()["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_long_running_services_have_health_checks_and_workers_wait_for_them() -> None:
    services = _compose()["services"]
    for name in ("kafka", "postgres", "worker", "worker-gpu", "scheduler", "scraper"):
        assert services[name]["healthcheck"]["test"], name
    assert services["worker"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_gpu_is_optional_and_reserved_only_for_the_gpu_worker() -> None:
    services = _compose()["services"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and services["worker-gpu"]["profiles"] == ["gpu"]
    assert "deploy" not in services["worker"]


def test_services_run_commands_the_cli_has() -> None:
    from pipeline.cli import build_parser

    parser = build_parser()
    for name, service in _compose()["services"].items():
        command = service.get("command")
        if command and command[0] == "finsent":
            parser.parse_args(command[1:])  # exits (fails the test) on an unknown command
            assert name
