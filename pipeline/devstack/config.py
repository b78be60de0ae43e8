"""Development services configured from the settings object (ports, folders, cache)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pipeline.devstack.kafka import BrokerConfig
from pipeline.devstack.postgres import PostgresConfig, default_data_dir
from pipeline.settings import Settings


def broker_config(settings: Settings, port: int | None = None) -> BrokerConfig:
    bootstrap_port = urlsplit(f"//{settings.kafka_bootstrap.split(',')[0]}").port or 9092
    port = port or bootstrap_port
    return BrokerConfig(
        data_dir=settings.kafka_dir, cache_dir=settings.cache_dir, port=port, controller_port=port + 1
    )


def postgres_config(settings: Settings, port: int | None = None) -> PostgresConfig:
    port = port or settings.dev_postgres_port
    return PostgresConfig(data_dir=default_data_dir(settings.home, port), port=port)
