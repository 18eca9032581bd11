"""Settings, read once from the environment at start-up.

Nothing outside this module reads os.environ. Every NAME also has a NAME_FILE variant that reads
the value from a file (for mounted secrets).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

SOURCE_ENV: dict[str, str] = {
    "hcp-terraform": "RECEIVER_SECRET_HCP_TERRAFORM",
    "github": "RECEIVER_SECRET_GITHUB",
    "gitlab": "RECEIVER_SECRET_GITLAB",
    "standard": "RECEIVER_SECRET_STANDARD",
}

#: Region key (the Terraform provider's aws_region) -> domain (CONTRACT.md §1).
REGIONS: dict[str, str] = {
    "us-east-1": "mypurecloud.com",
    "us-east-2": "use2.us-gov-pure.cloud",
    "us-west-2": "usw2.pure.cloud",
    "ca-central-1": "cac1.pure.cloud",
    "sa-east-1": "sae1.pure.cloud",
    "mx-central-1": "mxc1.pure.cloud",
    "eu-west-1": "mypurecloud.ie",
    "eu-west-2": "euw2.pure.cloud",
    "eu-central-1": "mypurecloud.de",
    "eu-central-2": "euc2.pure.cloud",
    "eusc-de-east-1": "edee1.eusc-pure.cloud",
    "me-central-1": "mec1.pure.cloud",
    "ap-south-1": "aps1.pure.cloud",
    "ap-southeast-1": "apse1.pure.cloud",
    "ap-southeast-2": "mypurecloud.com.au",
    "ap-northeast-1": "mypurecloud.jp",
    "ap-northeast-2": "apne2.pure.cloud",
    "ap-northeast-3": "apne3.pure.cloud",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    """Everything the receiver is configured with."""

    mapping_path: Path | None = None
    database_url: str = "sqlite:///pipedial-outbox.db"
    host: str = "127.0.0.1"
    port: int = 8080
    max_body: int = 1024 * 1024
    dry_run: bool = False
    log_level: str = "INFO"
    secrets: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    allow_unsigned: frozenset[str] = frozenset()

    region: str = "us-east-1"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    api_url: str | None = None
    login_url: str | None = None

    # Delivery
    embedded_worker: bool = True
    workers: int = 2
    lease_seconds: float = 30.0
    max_attempts: int = 12
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    poll_interval: float = 0.5
    request_timeout: float = 10.0
    rate_limit_per_minute: int = 300
    rate_limit_window_seconds: float = 60.0  # the platform's counting window (60 s for Genesys Cloud)
    token_refresh_margin: float = 60.0
    preflight_on_start: bool = True

    @property
    def api_base(self) -> str:
        """Return the platform API base URL (override, else the region's)."""
        if self.api_url:
            return self.api_url.rstrip("/")
        return f"https://api.{_domain(self.region)}"

    @property
    def login_base(self) -> str:
        """Return the OAuth host (override, else derived from the API host like the SDKs do)."""
        if self.login_url:
            return self.login_url.rstrip("/")
        if self.api_url:
            return self.api_url.rstrip("/").replace("//api.", "//login.")
        return f"https://login.{_domain(self.region)}"

    def secrets_for(self, source: str) -> tuple[str, ...]:
        return tuple(self.secrets.get(source, ()))

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from the environment; raise ConfigError naming any bad variable."""
        env = _Env(os.environ if environ is None else environ)
        secrets: dict[str, tuple[str, ...]] = {}
        for source, name in SOURCE_ENV.items():
            raw = env.get(name)
            if raw is not None:
                values = tuple(s.strip() for s in raw.split(",") if s.strip())
                if not values:
                    raise ConfigError(f"{name} is set but holds no secret")
                secrets[source] = values
        allow = frozenset(s.strip() for s in (env.get("RECEIVER_ALLOW_UNSIGNED") or "").split(",") if s.strip())
        unknown = allow - set(SOURCE_ENV)
        if unknown:
            raise ConfigError(f"RECEIVER_ALLOW_UNSIGNED names unknown source(s): {', '.join(sorted(unknown))}")
        region = env.get("GENESYSCLOUD_REGION") or "us-east-1"
        api_url = env.get("GENESYSCLOUD_API_URL")
        if region not in REGIONS and not api_url:
            raise ConfigError(
                f"GENESYSCLOUD_REGION={region!r} is not a known region; use one of {', '.join(REGIONS)}"
            )
        mapping = env.get("RECEIVER_MAPPING")
        d = cls()
        return cls(
            mapping_path=Path(mapping) if mapping else None,
            database_url=env.get("RECEIVER_DATABASE_URL") or d.database_url,
            host=env.get("RECEIVER_HOST") or d.host,
            port=env.int("RECEIVER_PORT", d.port),
            max_body=env.int("RECEIVER_MAX_BODY", d.max_body),
            dry_run=env.bool("RECEIVER_DRY_RUN", d.dry_run),
            log_level=(env.get("RECEIVER_LOG_LEVEL") or d.log_level).upper(),
            secrets=secrets,
            allow_unsigned=allow,
            region=region,
            client_id=env.get("GENESYSCLOUD_OAUTHCLIENT_ID"),
            client_secret=env.get("GENESYSCLOUD_OAUTHCLIENT_SECRET"),
            api_url=api_url,
            login_url=env.get("GENESYSCLOUD_LOGIN_URL"),
            embedded_worker=env.bool("RECEIVER_EMBEDDED_WORKER", d.embedded_worker),
            workers=env.int("RECEIVER_WORKERS", d.workers),
            lease_seconds=env.float("RECEIVER_LEASE_SECONDS", d.lease_seconds),
            max_attempts=env.int("RECEIVER_MAX_ATTEMPTS", d.max_attempts),
            retry_base_seconds=env.float("RECEIVER_RETRY_BASE_SECONDS", d.retry_base_seconds),
            retry_max_seconds=env.float("RECEIVER_RETRY_MAX_SECONDS", d.retry_max_seconds),
            poll_interval=env.float("RECEIVER_POLL_INTERVAL", d.poll_interval),
            request_timeout=env.float("RECEIVER_REQUEST_TIMEOUT", d.request_timeout),
            rate_limit_per_minute=env.int("RECEIVER_RATE_LIMIT_PER_MINUTE", d.rate_limit_per_minute),
            rate_limit_window_seconds=env.float("RECEIVER_RATE_LIMIT_WINDOW_SECONDS", d.rate_limit_window_seconds),
            preflight_on_start=env.bool("RECEIVER_PREFLIGHT_ON_START", d.preflight_on_start),
        )


def _domain(region: str) -> str:
    try:
        return REGIONS[region]
    except KeyError:
        raise ConfigError(f"unknown GENESYSCLOUD_REGION {region!r}") from None


class _Env:
    """Typed access to an environment mapping with NAME_FILE support."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str) -> str | None:
        file_name = self._environ.get(f"{name}_FILE")
        if file_name:
            try:
                return Path(file_name).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{name}_FILE={file_name}: cannot read ({exc.strerror})") from None
        return self._environ.get(name)

    def int(self, name: str, default: int) -> int:
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if value < 0:
            raise ConfigError(f"{name}={raw!r} must not be negative")
        return value

    def float(self, name: str, default: float) -> float:
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number") from None
        if value < 0:
            raise ConfigError(f"{name}={raw!r} must not be negative")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.get(name)
        if raw is None:
            return default
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")
