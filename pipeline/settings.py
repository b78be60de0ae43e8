"""The one typed settings object.

Every tunable of the service is read here, from `FINSENT_*` environment variables, and passed
down to the lower layers as plain arguments. Nothing below `pipeline` reads the environment,
so a test (or a second worker in one process) can run with settings of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """All configuration; docs/configuration.md documents each field's variable (a test checks it)."""

    model_config = SettingsConfigDict(env_prefix="FINSENT_", extra="ignore")

    # --- where state lives -------------------------------------------------------------------
    home: Path = Field(default=REPO_ROOT / ".finsent", description="All local state: db, models, Kafka data.")
    data_dir: Path = Field(default=REPO_ROOT.parent / "shared" / "data", description="Labelled data sets.")
    companies_file: Path | None = Field(
        default=None,
        description="The SEC's company_tickers.json the entity recogniser matches names and tickers "
        "against; default DATA_DIR/companies/sec_company_tickers.json. Missing: aliases only.",
    )
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite under home.")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "finsent", description="Downloaded artifacts.")
    dev_postgres_port: int = Field(default=55432, description="Port of the development PostgreSQL.")

    # --- Kafka -----------------------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_raw: str = "news.raw"
    topic_dlq: str = "news.dlq"
    topic_classified: str = "news.classified"
    topic_labels: str = "news.labels"
    topic_links: str = "news.links"
    topic_links_dlq: str = "news.links.dlq"
    topic_partitions: int = Field(default=4, ge=1)
    consumer_group: str = "finsent-worker"
    kafka_session_timeout_s: float = Field(default=30.0, gt=0)
    kafka_heartbeat_interval_s: float = Field(default=3.0, gt=0)
    kafka_max_message_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    kafka_max_poll_interval_s: float = Field(default=300.0, gt=0)
    worker_instance_id: str = Field(
        default="",
        max_length=200,
        description="Static group membership: a worker restarted with the same id takes back its "
        "partitions at once, without a rebalance. Give each worker its own (e.g. the pod name).",
    )

    # --- worker ----------------------------------------------------------------------------------
    batch_max_items: int = Field(default=256, ge=1)
    batch_within_s: float = Field(default=0.5, gt=0)
    max_title_chars: int = Field(default=2_000, ge=1)
    max_body_chars: int = Field(default=200_000, ge=0)
    classifier: str = Field(
        default="model",
        pattern="^(model|standin)$",
        description="'model': the active registered model (zero-shot base encoder if none); "
        "'standin': constant output, for plumbing tests and benchmarks only.",
    )
    encoder: str = Field(
        default="minilm",
        description="Base encoder: a profile (minilm), a local Hugging Face folder or a hub id.",
    )
    inference_device: str = Field(default="auto", description="auto (GPU when visible), cpu, cuda, cuda:N.")
    inference_precision: str = Field(
        default="auto",
        pattern="^(auto|fp32|bf16|fp16|int8)$",
        description="auto: bf16 on GPU, fp32 on CPU; int8 = dynamic quantisation (CPU).",
    )
    inference_max_length: int = Field(default=128, ge=8, le=512, description="Tokens per text.")
    inference_token_budget: int = Field(default=4096, ge=64, description="Padded tokens per forward pass.")
    inference_cpu_threads: int = Field(default=0, ge=0, description="Torch threads on CPU; 0 = all cores.")
    instruction_refresh_s: float = Field(
        default=5.0, gt=0, description="How often a worker re-reads the instruction set."
    )
    retrain_mode: str = Field(default="heads", pattern="^(heads|full)$", description="Retrain job's mode.")
    retrain_base_recipe: str = Field(
        default="default", description="Recipe whose data the retrain job adds to the labels; '' for none."
    )
    retrain_epochs: float = Field(default=1.5, gt=0, description="Epochs of a `full` retrain.")
    retrain_cron: str = Field(default="0 3 * * *", description="Cron schedule of the retrain job (UTC).")
    retrain_min_new_labels: int = Field(
        default=200, ge=1, description="Retrain early once this many labels arrived since the last run."
    )
    holdout_share: float = Field(
        default=0.2, gt=0, lt=1, description="Share of labels held out (by text hash)."
    )
    gate_min_macro_f1_gain: float = Field(default=0.005, ge=0, description="Promotion needs this mean gain.")
    gate_max_recall_drop: float = Field(default=0.05, ge=0, description="No class's recall may fall more.")
    retrain_check_s: float = Field(
        default=300.0, gt=0, description="How often the scheduler counts new labels."
    )
    scheduler_misfire_grace_s: float = Field(
        default=600.0, gt=0, description="A trigger missed by less than this still runs (once)."
    )
    dlq_retention_days: float = Field(
        default=30.0, gt=0, description="Resolved dead letters older are pruned."
    )
    body_retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Bodies of articles published longer ago are emptied (titles and predictions "
        "stay); unset: kept for ever.",
    )
    superseded_retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Predictions replaced by a newer model's longer ago are deleted (the newest "
        "always stays); unset: kept for comparison for ever.",
    )
    raw_history_retention_days: float | None = Field(
        default=None,
        gt=0,
        description="PostgreSQL: raw predictions (every model version's) of articles published "
        "longer ago are dropped a whole month partition at a time; current answers, views and "
        "rollups stay. Unset: kept for ever.",
    )
    model_refresh_s: float = Field(
        default=10.0, gt=0, description="How often a worker checks for a new model."
    )
    worker_web_port: int = Field(default=0, ge=0, description="Faust web port; 0 disables it.")
    db_retry_max_s: float = Field(default=30.0, gt=0, description="Cap of the database retry backoff.")

    # --- alerts ------------------------------------------------------------------------------------
    alert_scan_interval_s: float = Field(default=60.0, gt=0, description="How often the anomaly scan runs.")
    backfill_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="How often the scheduler's backfill job looks for history to re-label.",
    )
    backfill_items_per_s: float = Field(
        default=20.0,
        ge=0,
        description="The backfill job's pace (0: unthrottled); live traffic keeps the rest of the CPU.",
    )
    backfill_horizon_s: float | None = Field(
        default=None,
        gt=0,
        description="How far back the backfill job re-labels; unset: the longest window plus baseline "
        "of the enabled alert rules (what the scan compares).",
    )
    rollup_fold_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="How often the scheduler folds changed hours into the series rollups (the "
        "views are exact either way; unfolded hours are counted live, which costs read time).",
    )
    alert_email_to: list[str] = Field(default_factory=list, description="Recipients of the `email` receiver.")
    smtp_host: str = Field(default="", description="SMTP server; empty disables the `email` receiver.")
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_security: str = Field(default="starttls", pattern="^(none|starttls|tls)$")
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    smtp_from: str = "finsent@localhost"
    smtp_timeout_s: float = Field(default=15.0, gt=0)
    smtp_ca_file: Path | None = Field(default=None, description="CA bundle to verify the SMTP server with.")
    alert_webhook_url: str = Field(default="", description="Empty disables the `webhook` receiver.")
    alert_webhook_secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 signing key.")
    alert_webhook_timeout_s: float = Field(default=10.0, gt=0)
    alert_webhook_tries: int = Field(default=3, ge=1, description="Tries per delivery run, with backoff.")
    alert_retry_backoff_s: float = Field(default=30.0, gt=0, description="First outbox retry delay.")
    alert_retry_backoff_max_s: float = Field(default=900.0, gt=0, description="Outbox retry delay cap.")
    alert_notification_max_age_s: float = Field(
        default=86400.0, gt=0, description="An undeliverable notification older than this is marked failed."
    )

    # --- ingest (fetchers) -------------------------------------------------------------------
    fetch_timeout_s: float = Field(default=10.0, gt=0)
    fetch_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    fetch_min_interval_s: float = Field(default=1.0, ge=0, description="Per-host politeness delay.")
    fetch_allow_hosts: list[str] = Field(
        default_factory=list, description="Private/loopback hosts or IPs fetchers may reach."
    )
    fetch_user_agent: str = "finsent/0.1 (+https://github.com/finsent)"
    fetch_max_total_s: float = Field(default=30.0, gt=0, description="Cap on one response's whole transfer.")
    poll_interval_s: float = Field(default=60.0, gt=0)

    # --- scraper -------------------------------------------------------------------------------
    scraper_group: str = Field(default="finsent-scraper", description="Consumer group of `finsent scrape`.")
    scrape_concurrency: int = Field(default=8, ge=1, description="Hosts one scraper fetches from at once.")
    scrape_batch_links: int = Field(default=32, ge=1, description="Links taken from Kafka per batch.")
    scrape_tries: int = Field(
        default=3, ge=1, description="Tries of a 429/5xx/timeout before dead-lettering."
    )
    scrape_backoff_s: float = Field(default=2.0, gt=0, description="First retry delay (doubles each try).")
    scrape_backoff_max_s: float = Field(default=30.0, gt=0, description="Retry delay cap.")
    scrape_min_words: int = Field(
        default=40,
        ge=1,
        description="Fewer words of main text: published with the listing's text, extracted=false.",
    )
    scrape_handover_s: float = Field(
        default=10.0,
        ge=0,
        description="After partitions move to this scraper, no host is requested for this long "
        "(the longest crawl-delay it respects across a handover).",
    )
    robots_ttl_s: float = Field(default=3600.0, gt=0, description="How long a host's robots.txt is trusted.")
    scraper_metrics_port: int = Field(default=9467, ge=0, lt=65536, description="0 disables it.")

    # --- operations ----------------------------------------------------------------------------
    metrics_host: str = Field(default="127.0.0.1", description="Address the metrics/health endpoints bind.")
    worker_metrics_port: int = Field(default=9464, ge=0, lt=65536, description="0 disables it.")
    scheduler_metrics_port: int = Field(default=9465, ge=0, lt=65536, description="0 disables it.")
    ingest_metrics_port: int = Field(default=9466, ge=0, lt=65536, description="0 disables it.")
    lag_probe_interval_s: float = Field(default=5.0, gt=0, description="How often a worker measures lag.")
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")
    dashboard_token: SecretStr | None = Field(
        default=None, description="Required when the dashboard binds a non-loopback address."
    )
    analyst_password: SecretStr | None = Field(
        default=None,
        description="Password `finsent db analyst-role` gives the read-only analyst login; unset: "
        "a random one is generated and printed once.",
    )
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8050, gt=0, lt=65536)
    chromium: str = Field(default="chromium", description="Headless Chromium for `finsent report`.")

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.companies_file is None:
            self.companies_file = self.data_dir / "companies" / "sec_company_tickers.json"
        self.cache_dir = self.cache_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'finsent.db'}"
        return self

    def isolated(self, prefix: str) -> Settings:
        """The same settings on topics and a consumer group of their own (demo runs, tests, bench)."""
        return self.model_copy(
            update={
                "topic_raw": f"{prefix}.{self.topic_raw}",
                "topic_dlq": f"{prefix}.{self.topic_dlq}",
                "topic_classified": f"{prefix}.{self.topic_classified}",
                "topic_labels": f"{prefix}.{self.topic_labels}",
                "topic_links": f"{prefix}.{self.topic_links}",
                "topic_links_dlq": f"{prefix}.{self.topic_links_dlq}",
                "consumer_group": f"{prefix}.{self.consumer_group}",
                "scraper_group": f"{prefix}.{self.scraper_group}",
            }
        )

    def to_env(self) -> dict[str, str]:
        """These settings as `FINSENT_*` variables, so a child process (a worker) runs with exactly them."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, list):
                value = json.dumps(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[f"FINSENT_{name.upper()}"] = str(value)
        return env

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def dedup_path(self) -> Path:
        return self.home / "dedup.sqlite"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; overrides come from command-line flags."""
    return Settings(**overrides)  # type: ignore[arg-type]
