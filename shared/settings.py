"""Every knob of the platform in one typed object, read from AIRPARADIS_* variables and .env."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_HANDLE = re.compile(r"\w{1,50}\Z")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[] ")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Platform settings. Embedded and compose modes differ only in these values."""

    model_config = SettingsConfigDict(
        env_prefix="AIRPARADIS_", env_file=".env", extra="ignore", populate_by_name=True
    )

    home: Path = Field(
        Path(".airparadis"),
        description="Local data folder of the embedded mode (JetStream store, chDB, MLflow).",
    )
    data: Path | None = Field(
        None,
        description="Sentiment140 CSV used to train the baseline model (original or target,text).",
    )
    log_format: Literal["auto", "text", "json"] = Field(
        "auto",
        description="auto: readable text on a terminal, JSON lines otherwise; or text, json.",
    )
    process_name: str | None = Field(
        None, description="Name of this process in the logs (`airparadis up` names its children)."
    )

    # NATS
    nats_url: str | None = Field(
        None,
        description="NATS server URL, or several separated by commas (the nodes of a cluster: "
        "a client moves to another when its node goes); unset in embedded mode starts a local "
        "nats-server.",
    )
    nats_port: int = Field(4222, description="Port of the local nats-server (embedded mode).")
    nats_user: str | None = Field(None, description="NATS user (compose mode).")
    nats_password: str | None = Field(None, description="NATS password (compose mode).")
    nats_tls_ca: Path | None = Field(
        None,
        description="CA certificate (PEM) of the NATS server's; set, every connection to NATS "
        "is TLS and checks the server against it (compose: /tls/ca.crt, made by the tls "
        "one-shot).",
    )
    durability: str = Field(
        "always",
        pattern=r"^(always|[1-9][0-9]*(ms|s|m|h))$",
        description="When nats-server writes acknowledged messages to disk: always (before "
        "each acknowledgement) or an interval such as 1s or 2m (nats-server's default: faster, "
        "loses up to that much on a power cut).",
    )
    nats_reconnect_wait_s: float = Field(
        2.0, gt=0, description="Pause between two attempts to reach a NATS server that is gone."
    )
    nats_max_reconnect_attempts: int = Field(
        -1,
        description="Reconnect attempts before a process gives up on NATS and exits for its "
        "supervisor to restart it (-1: never give up).",
    )
    max_deliveries: int = Field(
        5, ge=1, description="Deliveries of a failing message before it goes to dlq.<subject>."
    )
    ack_wait_s: float = Field(
        30.0,
        gt=0,
        description="Seconds a worker has to ack a message before JetStream redelivers it.",
    )
    publish_timeout_s: float = Field(
        5.0, gt=0, description="How long a worker waits for JetStream to confirm its publishes."
    )
    stream_replicas: int = Field(
        1,
        ge=1,
        le=5,
        description="Copies of every stream and of the KV bucket `airparadis bus init` keeps, "
        "each on its own server: 1 for one nats-server, 3 in a cluster of three (a stream then "
        "survives the loss of one node).",
    )
    stream_max_age_days: int = Field(
        7, ge=1, description="How long JetStream keeps messages (at most retention_days)."
    )
    max_message_kb: int = Field(
        64, ge=4, le=1024, description="Largest message the tweet and feedback streams accept, KiB."
    )
    dead_letter_keep_bytes: int = Field(
        8192, ge=256, description="Bytes of a dead message's payload kept in its dead letter."
    )
    dlq_max_messages: int = Field(
        100_000, ge=100, description="Dead letters kept at most (the oldest go first)."
    )
    dlq_max_mb: int = Field(256, ge=1, description="Size of the dead-letter stream at most, MiB.")
    stall_after_s: float = Field(
        60.0,
        gt=0,
        description="A consumer with messages waiting and nothing acknowledged for this long "
        "is reported stalled (logs, /readyz).",
    )

    # ClickHouse
    clickhouse_url: str | None = Field(
        None,
        description="ClickHouse URL (http://user:pass@host:8123/db, or https://...:8443/db); "
        "unset uses chDB in home.",
    )
    clickhouse_tls_ca: Path | None = Field(
        None,
        description="CA certificate (PEM) that an https ClickHouse URL is checked against "
        "(compose: /tls/ca.crt); unset: the system's CAs.",
    )
    clickhouse_cluster: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="ClickHouse cluster (remote_servers) on which `airparadis migrate` creates "
        "replicated tables, ON CLUSTER (compose's cluster profile: airparadis); unset or empty: "
        "one server.",
    )
    retention_days: int = Field(
        365, ge=1, description="TTL of predictions and feedback in ClickHouse (RGPD)."
    )

    # Personal data (shared/scrub.py, docs/rgpd.md)
    text_storage: Literal["full", "scrubbed", "none"] = Field(
        "scrubbed",
        description="What text is kept: full (as written), scrubbed (e-mails, phones, URL paths "
        "and other @handles replaced by placeholders at the ingress, before anything is stored "
        "or emailed) or none (scrubbed on the bus for the model, empty text stored).",
    )
    # NoDecode: a comma-separated list in the environment, not JSON.
    own_handles: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["AirParadis"],
        description="The airline's own @handles, which the scrubber keeps (comma-separated, "
        "case-insensitive).",
    )
    ingress_purge_s: int = Field(
        60,
        ge=5,
        description="Under scrubbed or none: how often messages as upstream apps wrote them "
        "(tweets.submitted, feedback.reported) are removed from JetStream once every worker "
        "that reads them has acknowledged them, seconds.",
    )

    # MLflow
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking and registry URI; unset uses SQLite in home."
    )
    model_name: str = Field("airparadis-sentiment", description="Registered model name.")
    target_precision: float = Field(
        0.90, gt=0, le=1, description="Precision of the positive class the threshold aims for."
    )
    train_sample: int = Field(
        50_000, ge=100, description="Tweets used to train the baseline model at first start."
    )

    # Workers
    batch_max_size: int = Field(64, ge=1, description="Infer micro-batch: most messages per batch.")
    batch_max_wait_ms: int = Field(
        0,
        ge=0,
        description="Infer micro-batch: how long a batch waits to fill once its first tweet is "
        "there, in ms (0: score what is waiting at once).",
    )
    infer_replicas: int | None = Field(
        None,
        ge=1,
        le=32,
        description="Infer processes `airparadis up` runs on one durable, a fixed count (unset: "
        "between scale_infer_min and scale_infer_max, on backlog).",
    )

    # Scaling on backlog (`airparadis up`, airparadis/scaling.py)
    scale_infer_min: int = Field(1, ge=0, le=32, description="Fewest infer processes `up` runs.")
    scale_infer_max: int = Field(
        2, ge=1, le=32, description="Most infer processes `up` runs when the backlog grows."
    )
    scale_preprocess_min: int = Field(
        1, ge=0, le=32, description="Fewest preprocess processes `up` runs."
    )
    scale_preprocess_max: int = Field(
        1, ge=1, le=32, description="Most preprocess processes `up` runs when the backlog grows."
    )
    scale_target_backlog: int = Field(
        2000,
        ge=1,
        description="Messages waiting per process (num_pending + num_ack_pending of the worker's "
        "durable) above which `up` adds a process.",
    )
    scale_up_after_s: float = Field(
        5.0, ge=0, description="How long the backlog stays above the target before one is added."
    )
    scale_down_after_s: float = Field(
        60.0,
        ge=0,
        description="Quiet period: how long the backlog stays under half the target (with one "
        "process fewer) before one is removed.",
    )
    scale_interval_s: float = Field(
        1.0, gt=0, description="How often `up` samples the backlogs, seconds."
    )
    champion_poll_s: float = Field(
        30.0,
        gt=0,
        description="How often infer asks the registry for the champion, in case it missed a "
        "models.promoted event (bus down at the time).",
    )
    clickhouse_fsync: bool = Field(
        True,
        description="Every ClickHouse insert reaches the disk before it returns (and before the "
        "store acks its messages); off is faster and may lose the last seconds on a power cut.",
    )
    store_batch_size: int = Field(500, ge=1, description="Store: most rows per ClickHouse insert.")
    store_flush_ms: int = Field(
        200, ge=1, description="Store: longest wait before an insert, in ms."
    )

    # Alerts
    alert_reports: int = Field(3, ge=1, description="Wrong-prediction reports that raise an alert.")
    alert_window_s: int = Field(300, ge=1, description="Sliding window for those reports, seconds.")
    alert_cooldown_s: int = Field(600, ge=0, description="Quiet time after an alert, seconds.")
    smtp_host: str = Field("localhost", description="SMTP server for alert emails.")
    smtp_port: int = Field(1025, description="SMTP port.")
    smtp_user: str | None = Field(None, description="SMTP user, if the server needs a login.")
    smtp_password: str | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Use STARTTLS with the SMTP server.")
    alert_from: str = Field("airparadis@localhost", description="Sender of alert emails.")
    # NoDecode: a comma-separated list in the environment, not JSON.
    alert_to: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["comms-team@localhost"], description="Recipients of alert emails."
    )

    # Drift and error-rate checks (run by the alerter on ClickHouse)
    check_interval_s: int = Field(
        60, ge=0, description="How often the alerter checks drift and error rate, s (0: never)."
    )
    drift_window_s: int = Field(
        3600, ge=60, description="Recent predictions the drift PSI is computed on, seconds."
    )
    drift_psi_alert: float = Field(
        0.25, gt=0, description="PSI of any feature at or above which a drift alert is raised."
    )
    error_rate_window_s: int = Field(
        3600, ge=60, description="Recent predictions the error rate is computed on, seconds."
    )
    error_rate_alert: float = Field(
        0.05, gt=0, le=1, description="Share of predictions reported wrong that raises an alert."
    )
    error_rate_min_predictions: int = Field(
        100, ge=1, description="Predictions the window needs before its error rate counts."
    )

    # Languages (shared/language.py)
    # NoDecode: a comma-separated list in the environment, not JSON.
    data_languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["en"],
        description="Languages of the training data (Sentiment140: en), comma-separated ISO "
        "639-1 codes, recorded with each version trained: serving flags tweets in others.",
    )
    language_min_letters: int = Field(
        8,
        ge=1,
        description="Letters a tweet needs (without handles, URLs, emojis, digits) before its "
        "language is told; fewer: too short to tell, no guess.",
    )
    language_min_confidence: float = Field(
        0.85,
        ge=0.5,
        le=1,
        description="Detector probability under which a language is only uncertain (and never "
        "makes a verdict unreliable).",
    )
    language_alert_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Share of a window's tweets confidently in a language the serving model did "
        "not learn that raises a language_shift alert (drift window and cooldown).",
    )
    language_min_predictions: int = Field(
        50, ge=1, description="Predictions the window needs before its language share counts."
    )
    check_cooldown_s: int = Field(
        3600,
        ge=0,
        description="Quiet time after a drift, error-rate or precision alert, per kind, seconds.",
    )

    # Precision on live traffic (shared/shift.py), estimated by the alerter every check round
    threshold_mode: Literal["fixed", "adaptive"] = Field(
        "adaptive",
        description="fixed: every version scores at the threshold chosen in training; adaptive: "
        "the threshold follows the estimated share of positive tweets to keep the target "
        "precision.",
    )
    precision_window_s: int = Field(
        3600, ge=60, description="Recent predictions the live precision is estimated on, seconds."
    )
    precision_min_predictions: int = Field(
        200, ge=20, description="Predictions the window needs before an estimate is made."
    )
    precision_max_predictions: int = Field(
        20_000, ge=100, description="Most recent predictions an estimate reads at the most."
    )
    threshold_min: float = Field(0.05, gt=0, lt=1, description="Lowest adaptive threshold.")
    threshold_max: float = Field(0.995, gt=0, lt=1, description="Highest adaptive threshold.")
    threshold_hysteresis: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="The adaptive threshold moves only when the estimated precision at the one "
        "in use is further than this from the target.",
    )
    precision_risk_margin: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="A precision_risk alert is raised when the estimated precision falls under "
        "the target by more than this.",
    )

    # Gateway
    http_host: str = Field("127.0.0.1", description="Gateway bind address.")
    http_port: int = Field(8000, description="Gateway port.")
    predict_timeout_s: float = Field(
        10.0, gt=0, description="How long /v1/predict waits for the pipeline's answer."
    )
    http_max_body_kb: int = Field(
        1024, ge=1, description="Largest request body the gateway reads, KiB (413 beyond)."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Proxies whose X-Forwarded-For the gateway believes for the client address "
        "(comma-separated addresses or networks, * for any): what per-address rate limits count.",
    )

    # Security (services/gateway/security.py, shared/keys.py)
    auth: Literal["on", "off"] | None = Field(
        None,
        description="on: every API call needs an API key with the right scope; off: the API is "
        "open. Default: off when the gateway binds to a loopback address, else on.",
    )
    rate_limit_per_s: float = Field(
        10.0,
        ge=0,
        description="Requests per second each API key and each client address may make "
        "(predict, explain, monitor, keys; 0: no limit).",
    )
    rate_limit_burst: int = Field(
        20, ge=1, description="Requests each key and address may make at once before the rate."
    )
    feedback_rate_per_s: float = Field(
        1.0,
        ge=0,
        description="Wrong-prediction reports per second each API key and each client address "
        "may send (0: no limit).",
    )
    feedback_rate_burst: int = Field(
        3, ge=1, description="Reports each key and address may send at once before the rate."
    )
    refusals_flush_s: float = Field(
        10.0,
        gt=0,
        description="How often the gateway publishes the requests its rate limits refused since "
        "its last summary (one message, stored for Grafana), seconds; a last one at shutdown.",
    )

    @field_validator("clickhouse_cluster", mode="before")
    @classmethod
    def _no_cluster_when_empty(cls, value: object) -> object:
        # compose passes ${AIRPARADIS_CLICKHOUSE_CLUSTER:-}: empty means one server.
        return None if value == "" else value

    @field_validator("alert_to", "own_handles", "data_languages", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("own_handles")
    @classmethod
    def _handles(cls, handles: list[str]) -> list[str]:
        names = [handle.removeprefix("@") for handle in handles]
        wrong = [name for name in names if not _HANDLE.match(name)]
        if wrong:
            raise ValueError(f"not @handles: {wrong} (letters, digits and _, at most 50)")
        return names

    @field_validator("data_languages")
    @classmethod
    def _language_codes(cls, codes: list[str]) -> list[str]:
        lowered = [code.lower() for code in codes]
        wrong = [code for code in lowered if not re.fullmatch(r"[a-z]{2,3}", code)]
        if wrong or not lowered:
            raise ValueError(f"expected ISO 639-1 codes such as en,fr; got {codes}")
        return lowered

    @model_validator(mode="after")
    def _bus_keeps_no_longer_than_the_store(self) -> Settings:
        if self.stream_max_age_days > self.retention_days:
            raise ValueError(
                f"stream_max_age_days ({self.stream_max_age_days}) must not exceed "
                f"retention_days ({self.retention_days}): JetStream would keep messages after "
                "ClickHouse deleted their rows"
            )
        return self

    @model_validator(mode="after")
    def _scale_bounds(self) -> Settings:
        for worker in ("infer", "preprocess"):
            low, high = getattr(self, f"scale_{worker}_min"), getattr(self, f"scale_{worker}_max")
            if low > high:
                raise ValueError(f"scale_{worker}_min ({low}) must not exceed scale_{worker}_max")
        return self

    @model_validator(mode="after")
    def _threshold_bounds(self) -> Settings:
        if self.threshold_min >= self.threshold_max:
            raise ValueError(
                f"threshold_min ({self.threshold_min}) must be below threshold_max "
                f"({self.threshold_max})"
            )
        return self

    @property
    def gateway_on_loopback(self) -> bool:
        """Whether the gateway listens on this machine only."""
        return is_loopback(self.http_host)

    @property
    def auth_required(self) -> bool:
        """Whether API calls need a key: the setting, else only off the loopback."""
        if self.auth is not None:
            return self.auth == "on"
        return not self.gateway_on_loopback

    @property
    def tracking_uri(self) -> str:
        """MLflow URI, defaulting to a SQLite file in the home folder."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return (self.home / "mlartifacts").resolve()

    @property
    def chdb_path(self) -> Path:
        return (self.home / "clickhouse").resolve()

    @property
    def nats_store_dir(self) -> Path:
        return (self.home / "nats").resolve()
