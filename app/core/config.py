"""Settings: one pydantic-settings class, every field overridable with a ``QG_`` variable.

Nested values (currency rates, ramp schedule, holidays) are read from JSON in the variable,
e.g. ``QG_CURRENCY_RATES='{"EUR": 1.08}'``.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from analytics.periods import FiscalCalendar, period_of, shift

DEFAULT_DATA_DIR = Path("data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QG_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_DATA_DIR / 'quotagap.db'}",
        description="SQLAlchemy URL; postgresql+psycopg://user@host/db switches to PostgreSQL.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for encrypting CRM credentials and webhook secrets at rest.",
    )
    secret_key_file: str = Field(
        default=str(DEFAULT_DATA_DIR / "secret.key"),
        description="Where the generated key lives when QG_SECRET_KEY is not set.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    # Reporting calendar
    fiscal_year_start_month: int = Field(default=1, ge=1, le=12)
    fiscal_calendar: Literal["calendar", "445"] = "calendar"
    timezone: str = "UTC"
    reporting_currency: str = "USD"
    currency_rates: dict[str, float] = Field(
        default_factory=lambda: {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "AUD": 0.66},
        description="Units of reporting currency per unit of each currency.",
    )

    # Targets and statuses
    target_growth_pct: float = 3.0
    status_on_track_min: float = Field(default=0.9, description="pace ratio at or above: on_track")
    ramp_schedule: list[float] = Field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])
    holidays: list[date] = Field(default_factory=list)
    pacing: Literal["linear", "working_days", "seasonal"] = Field(
        default="linear", description="How expected-to-date is paced through a period."
    )

    # Scheduler
    scheduler_enabled: bool = Field(
        default=True,
        description="Run the scheduler inside `serve` (false: run `quotagap worker` instead).",
    )
    scheduler_lease_seconds: float = Field(
        default=30.0, gt=0, description="Leadership lease; a dead leader is replaced after it."
    )
    job_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A job's leases (compute, a source's sync) live this long without a "
        "heartbeat (sent every quarter of it): a killed job frees them within it.",
    )
    scheduler_threads: int = Field(default=4, ge=1, le=64)
    scheduler_misfire_grace_seconds: int = Field(default=300, ge=1)

    # Computing and keeping results
    history_months: int = Field(default=24, ge=3, le=120)
    snapshot_retention_days: int = Field(default=400, ge=1)

    # Alerts and webhooks
    alert_lookback_periods: int = Field(
        default=1,
        ge=0,
        le=24,
        description="Besides the current period, how many past periods alerts look at "
        "(so a period that just closed raises its missed targets, not two years of history).",
    )
    webhook_timeout_seconds: float = Field(
        default=15.0, gt=0, le=60, description="A delivery succeeds on a 2xx within this."
    )
    webhook_retry_schedule_seconds: list[float] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        min_length=1,
        description="Delay before each attempt (the first is immediate); then the delivery fails.",
    )
    webhook_disable_after_days: float = Field(
        default=5.0, gt=0, description="An endpoint failing for this long is disabled."
    )
    webhook_dispatch_interval_seconds: float = Field(default=2.0, gt=0)
    webhook_senders: int = Field(default=4, ge=1, le=64, description="Concurrent sends.")
    webhook_allow_private_destinations: bool = Field(
        default=False,
        description="Allow webhook URLs on loopback, private or link-local addresses "
        "(off: a webhook must not become a way into the internal network).",
    )
    source_allow_private_destinations: bool = Field(
        default=False,
        description="Allow CRM URLs (base, instance, login, token) on loopback, private or "
        "link-local addresses: a local sandbox CRM, the demo, tests (off: an admin key must not "
        "be able to send stored CRM credentials into the internal network).",
    )

    # Polling
    cache_max_age_seconds: int = Field(
        default=60,
        ge=0,
        le=86400,
        description="Cache-Control max-age of read answers (less when a source syncs more often).",
    )

    # Monitoring
    metrics_business_gauges: bool = Field(
        default=False,
        description="Also export attainment per rep and team on /metrics (names and figures "
        "reach whoever reads the Prometheus server).",
    )

    # API limits
    max_page_size: int = 500
    sqlite_busy_timeout_ms: int = Field(
        default=30_000,
        ge=0,
        description="SQLite: how long a write waits for another writer's lock before the "
        "request answers 503 (reads never wait).",
    )
    max_upload_bytes: int = 20 * 1024 * 1024
    max_json_bytes: int = Field(default=10 * 1024 * 1024, description="Largest JSON body.")
    rate_limit_per_minute: float = Field(
        default=1200, ge=0, description="Requests per minute per API key (0: no limit)."
    )
    rate_limit_burst: int = Field(default=300, ge=1, description="Requests a key may burst.")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or CIDRs of the reverse proxies in front of the service, "
        "comma-separated; only their X-Forwarded-For names the client a per-address rate "
        "limit is charged to (empty: the TCP peer is the client).",
    )
    max_csv_rows: int = 200_000

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, v: object) -> object:
        # "10.0.0.1, 10.1.0.0/16" as well as a JSON list; each entry must be a network.
        if isinstance(v, str):
            v = json.loads(v) if v.strip().startswith("[") else v.split(",")
        if isinstance(v, list):
            v = [str(e).strip() for e in v if str(e).strip()]
            for entry in v:
                ipaddress.ip_network(entry, strict=False)  # ValueError names the entry
        return v

    @field_validator("reporting_currency")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @property
    def calendar(self) -> FiscalCalendar:
        return FiscalCalendar(start_month=self.fiscal_year_start_month, kind=self.fiscal_calendar)

    def today(self) -> date:
        """Today in the reporting timezone: the one "today" of every figure and default."""
        return datetime.now(ZoneInfo(self.timezone)).date()

    def history_start(self, as_of: date) -> date:
        """The first day a compute as of ``as_of`` covers (besides periods with a target):
        the start of the fiscal month ``history_months - 1`` months before as_of's."""
        month = period_of(as_of, "month", self.calendar)
        return shift(month, -self.history_months + 1, self.calendar).start

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
