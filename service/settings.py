"""All service configuration, from `HCT_*` environment variables (or a `.env` file).

Development defaults run out of the box (SQLite file, bundled model, no API keys); outside
development the settings refuse the defaults that are unsafe for a hospital network.
"""

from __future__ import annotations

import os
from datetime import tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.tenancy import KeyEntry, parse_key_entry

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"


class Settings(BaseSettings):
    """Service settings; every field can be set as `HCT_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="HCT_", env_file=".env", extra="ignore",
        # Docker/compose secrets: /run/secrets/hct_database_password, /run/secrets/hct_api_keys
        secrets_dir=os.environ.get("HCT_SECRETS_DIR", "/run/secrets")
        if os.path.isdir(os.environ.get("HCT_SECRETS_DIR", "/run/secrets")) else None,
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./hct.db"
    database_password: SecretStr | None = None  # filled into database_url when it has none
    model_dir: Path = DEFAULT_MODEL_DIR
    execution_provider: Literal["auto", "cuda", "cpu"] = "auto"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    set_size: int = Field(1000, ge=16, le=100_000)  # cells fed to the model per sample
    min_cells: int = Field(200, ge=2)
    max_cells: int = Field(200_000, ge=1)  # per sample in a request
    max_batch_size: int = Field(32, ge=1, le=1024)
    max_queue_delay_ms: float = Field(5.0, ge=0.0, le=1000.0)
    max_queue_size: int = Field(256, ge=1)
    # Samples per `POST /v1/predictions/bulk` request (JSON or Arrow); they share model calls.
    max_bulk_samples: int = Field(256, ge=1, le=100_000)
    # Bytes of bulk request bodies read, decoded or scored at once in this process; a bulk
    # request past it is a 503 with Retry-After (one is always admitted when none runs).
    max_bulk_inflight_bytes: int = Field(96 * 1024 * 1024, ge=1024)
    # Cells (after subsampling) per model call: a micro-batch of short samples holds more of
    # them than one of long samples; 0 = only `max_batch_size` counts.
    max_batch_cells: int = Field(0, ge=0)
    # auto: int8 on the CPU when the bundle ships an int8 graph whose accuracy check passed,
    # fp32 on CUDA.
    model_precision: Literal["auto", "fp32", "int8"] = "auto"
    # Concurrent model calls, and onnxruntime intra-op threads per call; 0 = auto: on the CPU one
    # call per core (at most 4) on one thread each, on CUDA one call (service/state.py).
    model_workers: int = Field(0, ge=0, le=64)
    intra_op_threads: int = Field(0, ge=0, le=256)
    # A hung database answers 503 within seconds instead of holding threads and connections.
    db_connect_timeout_s: float = Field(3.0, gt=0, le=60)
    db_statement_timeout_s: float = Field(10.0, gt=0, le=3600)
    db_pool_timeout_s: float = Field(5.0, gt=0, le=60)
    readyz_timeout_s: float = Field(2.0, gt=0, le=30)
    # PostgreSQL: the longest one call on an open connection (statement, COMMIT, pre-ping) may
    # go unanswered before the client closes it (a silent database); longer than the server's
    # own statement timeout, so a slow statement is cancelled by the server first.
    database_timeout_s: float = Field(12.0, gt=0, le=3600)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(1024 * 1024 * 1024, ge=1024)
    # HTTP edge of `hct serve` (service/api/http_limits.py): request head size and read time,
    # idle keep-alive; the reverse proxy in front applies the same bounds.
    max_header_bytes: int = Field(32 * 1024, ge=1024, le=1024 * 1024)
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    keep_alive_timeout_s: int = Field(5, ge=1, le=300)

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    upload_dir: Path = Path("./hct-uploads")
    job_lease_seconds: float = Field(60.0, gt=0)
    job_chunk_size: int = Field(64, ge=1)
    # Uploads no queued job needs, unchanged this long, are removed by every job worker.
    upload_orphan_grace_s: float = Field(3600.0, ge=0)
    upload_sweep_interval_s: float = Field(600.0, gt=0)
    run_jobs: bool = True  # this process also works on batch jobs
    # HL7 v2 ORU^R01 delivery to a LIS over MLLP; off unless a host is set (service/delivery/).
    hl7_mllp_host: str | None = None
    hl7_mllp_port: int = Field(2575, ge=1, le=65535)
    hl7_mllp_max_attempts: int = Field(10, ge=1)  # then the message is marked failed
    # Whose predictions go to that LIS (one link per deployment); empty: every tenant's, which
    # is refused when the keys name more than one tenant (one lab's LIS, another's patients).
    hl7_mllp_tenants: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # /v1/monitoring and /metrics hide a figure over fewer samples than this (a small window's
    # mean is close to one patient's own value); the default is DEFAULT_MIN_SAMPLES there.
    monitoring_min_samples: int = Field(20, ge=1, le=100_000)
    # The zone a collection time without a UTC offset is read in (service/collection_time.py).
    local_timezone: str = "UTC"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            # commas or newlines (a compose secret file holds one entry a line)
            return [k.strip().lower() for k in value.replace("\n", ",").split(",")
                    if k.strip()]
        return value

    @field_validator("hl7_mllp_tenants", mode="before")
    @classmethod
    def _split_tenants(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip().lower() for t in value.split(",") if t.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_are_entries(cls, keys: list[str]) -> list[str]:
        entries = [parse_key_entry(key) for key in keys]  # TENANT:SCOPES:SHA256HEX or digest
        digests = [e.digest for e in entries]
        if len(set(digests)) != len(digests):
            raise ValueError("HCT_API_KEYS lists one key digest twice")
        return keys

    @field_validator("local_timezone")
    @classmethod
    def _is_iana_zone(cls, name: str) -> str:
        from service.collection_time import zone_named

        zone_named(name)  # raises ValueError naming the setting
        return name

    @property
    def local_zone(self) -> tzinfo:
        """`HCT_LOCAL_TIMEZONE` as a zone."""
        from service.collection_time import zone_named

        return zone_named(self.local_timezone)

    @property
    def key_entries(self) -> list[KeyEntry]:
        """The configured keys with their tenants and scopes."""
        return [parse_key_entry(key) for key in self.api_keys]

    @property
    def database_url_with_password(self) -> str:
        """`database_url`, with `database_password` inserted when the URL carries none."""
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url)
        if self.database_password is not None and url.password is None and url.username:
            url = url.set(password=self.database_password.get_secret_value())
        return url.render_as_string(hide_password=False)

    @model_validator(mode="after")
    def _one_lis_per_tenant_set(self) -> Settings:
        tenants = {e.tenant for e in self.key_entries}
        if self.hl7_mllp_host and not self.hl7_mllp_tenants and len(tenants) > 1:
            raise ValueError(
                f"HCT_HL7_MLLP_TENANTS must name the tenants whose results go to the LIS at "
                f"HCT_HL7_MLLP_HOST: HCT_API_KEYS has keys of {len(tenants)} tenants "
                f"({', '.join(sorted(tenants))})")
        return self

    @model_validator(mode="after")
    def _client_deadline_after_server_timeout(self) -> Settings:
        if self.database_timeout_s <= self.db_statement_timeout_s:
            raise ValueError(
                f"HCT_DATABASE_TIMEOUT_S ({self.database_timeout_s:g}) must be longer than "
                f"HCT_DB_STATEMENT_TIMEOUT_S ({self.db_statement_timeout_s:g}): the server "
                "cancels a slow statement and keeps the connection, the client deadline "
                "closes it")
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            if self.database_url.startswith("sqlite"):
                raise ValueError("HCT_DATABASE_URL must point at PostgreSQL in production "
                                 "(SQLite is for development and tests)")
            if not self.api_keys:
                raise ValueError("HCT_API_KEYS must be set in production")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
