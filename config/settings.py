"""The one settings object, built from the environment and an optional `.env` file.

Every value has a default that serves the embedded mode (no MongoDB, Redis or cloud
account needed). A bad value stops the start with one line naming the variable and what
is allowed; secret values are never echoed back.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SettingsError(Exception):
    """A setting has a value the server cannot start with."""


def _env(name: str, **kwargs: Any) -> Any:
    return Field(validation_alias=name, **kwargs)


CommaList = Annotated[tuple[str, ...], NoDecode]


class Settings(BaseSettings):
    """Everything the process reads from its environment, typed and validated."""

    model_config = SettingsConfigDict(extra="ignore", validate_by_name=True, frozen=True)

    host: str = _env("NAMELESS_HOST", default="127.0.0.1", description="address to listen on")
    port: int = _env("NAMELESS_PORT", default=8000, ge=0, le=65535, description="TCP port")
    data_dir: Path = _env(
        "NAMELESS_DATA_DIR", default=Path("var"), description="embedded database, media, keys"
    )
    public_url: str = _env(
        "NAMELESS_PUBLIC_URL", default="", description="external base URL, e.g. https://api.example.com"
    )
    log_level: str = _env(
        "NAMELESS_LOG_LEVEL", default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$",
        description="DEBUG, INFO, WARNING or ERROR",
    )

    mongo_url: SecretStr | None = _env("MONGO_URL", default=None, description="external MongoDB")
    mongo_db: str = _env(
        "NAMELESS_MONGO_DB", default="nameless", pattern=r"^[A-Za-z0-9_-]{1,60}$",
        description="database name (also namespaces Redis keys)",
    )
    redis_url: SecretStr | None = _env("REDIS_URL", default=None, description="external Redis")
    dependency_timeout_ms: int = _env(
        "NAMELESS_DEPENDENCY_TIMEOUT_MS", default=2000, ge=100, le=60_000,
        description="how long a request waits for MongoDB or Redis before answering 503",
    )
    redis_max_connections: int = _env(
        "NAMELESS_REDIS_MAX_CONNECTIONS", default=100, ge=2, le=10_000,
        description="Redis connections per process; callers beyond it wait (up to the dependency timeout)",
    )

    secret_key: SecretStr | None = _env(
        "NAMELESS_SECRET_KEY",
        default=None,
        description="signing key (at least 32 chars); generated under the data dir if unset",
    )
    trust_proxy: bool = _env(
        "NAMELESS_TRUST_PROXY", default=False, description="one trusted reverse proxy (NAMELESS_TRUSTED_PROXIES=1)"
    )
    trusted_proxies: int | None = _env(
        "NAMELESS_TRUSTED_PROXIES", default=None, ge=0, le=10,
        description="how many reverse proxies in front append to X-Forwarded-For/-Proto (0: headers ignored)",
    )
    client_ip_header: str = _env(
        "NAMELESS_CLIENT_IP_HEADER", default="", pattern=r"^[A-Za-z0-9-]{0,60}$",
        description="a header the nearest trusted proxy overwrites with the client address, e.g. X-Real-IP",
    )
    cors_origins: CommaList = _env(
        "NAMELESS_CORS_ORIGINS", default=(), description="comma-separated allowed origins"
    )
    max_json_bytes: int = _env(
        "NAMELESS_MAX_JSON_BYTES", default=1_048_576, ge=1024, description="largest JSON body"
    )
    max_request_bytes: int = _env(
        "NAMELESS_MAX_REQUEST_BYTES",
        default=64 * 1_048_576,
        ge=1024,
        description="largest request body of any kind (uploads)",
    )
    rate_limit_ip: int = _env(
        "NAMELESS_RATE_LIMIT_IP", default=600, ge=1, description="requests per minute per IP"
    )
    rate_limit_user: int = _env(
        "NAMELESS_RATE_LIMIT_USER", default=600, ge=1, description="requests per minute per user"
    )
    job_workers: int = _env(
        "NAMELESS_JOB_WORKERS", default=1, ge=0, le=16, description="in-process background job workers (0: none)"
    )
    job_lease_seconds: float = _env(
        "NAMELESS_JOB_LEASE", default=30.0, ge=1, le=3600,
        description="how long a job's worker may go silent before another worker takes the job over, seconds",
    )
    max_upload_bytes: int = _env(
        "NAMELESS_MAX_UPLOAD_BYTES", default=20 * 1024**3, ge=1024, description="largest source video upload"
    )
    upload_chunk_bytes: int = _env(
        "NAMELESS_UPLOAD_CHUNK_BYTES", default=16 * 1024**2, ge=64 * 1024, le=64 * 1024**2,
        description="largest upload chunk per request",
    )
    support_messages_per_minute: int = _env(
        "NAMELESS_SUPPORT_MESSAGES_PER_MINUTE", default=120, ge=1, description="support chat messages per user"
    )
    rate_limit_auth: int = _env(
        "NAMELESS_RATE_LIMIT_AUTH", default=20, ge=1, description="sign-in/up attempts per minute per IP"
    )
    metrics_token: SecretStr | None = _env(
        "NAMELESS_METRICS_TOKEN", default=None, description="bearer token for /metrics scrapers"
    )
    catalog_poll_s: float = _env(
        "NAMELESS_CATALOG_POLL_S", default=2.0, ge=0.05, le=300,
        description="how often each process's catalog read model reads the titles changed since its last look, seconds",
    )
    catalog_rebuild_s: float = _env(
        "NAMELESS_CATALOG_REBUILD_S", default=900.0, ge=10, le=86_400,
        description="how often each process rebuilds its catalog read model from the store, seconds",
    )
    catalog_details_cached: int = _env(
        "NAMELESS_CATALOG_DETAILS_CACHED", default=5_000, ge=0, le=1_000_000,
        description="titles' details, seasons and episode pages each process keeps (least recently used dropped "
                    "first; the read model holds none of them), entries",
    )
    catalog_start_wait_s: float = _env(
        "NAMELESS_CATALOG_START_WAIT_S", default=5.0, ge=0, le=600,
        description="how long start-up waits for the catalog read model before serving with readiness held, seconds",
    )
    shutdown_grace_seconds: float = _env(
        "NAMELESS_SHUTDOWN_GRACE", default=10.0, ge=0, le=300, description="drain deadline"
    )

    access_token_ttl: int = _env(
        "NAMELESS_ACCESS_TOKEN_TTL", default=900, ge=30, le=86_400, description="access token lifetime, seconds"
    )
    session_cache_seconds: float = _env(
        "NAMELESS_SESSION_CACHE_SECONDS", default=10.0, ge=0, le=60,
        description="how long a process reuses the sign-in check of an access token, for requests and "
                    "socket connects (0: never); "
                    "revocations, suspensions and role changes drop it at once",
    )
    jwt_keys: SecretStr | None = _env(
        "NAMELESS_JWT_KEYS",
        default=None,
        description="kid:secret pairs, comma-separated, first one signs; derived from the secret key if unset",
    )

    google_client_ids: CommaList = _env("GOOGLE_CLIENT_IDS", default=(), description="Google sign-in audiences")
    google_jwks_url: str = _env("NAMELESS_GOOGLE_JWKS_URL", default="https://www.googleapis.com/oauth2/v3/certs")
    apple_client_ids: CommaList = _env("APPLE_CLIENT_IDS", default=(), description="Sign in with Apple audiences")
    apple_jwks_url: str = _env("NAMELESS_APPLE_JWKS_URL", default="https://appleid.apple.com/auth/keys")
    facebook_app_id: str = _env("FACEBOOK_APP_ID", default="", description="Facebook Login app id")
    facebook_app_secret: SecretStr | None = _env("FACEBOOK_APP_SECRET", default=None)
    facebook_graph_url: str = _env("NAMELESS_FACEBOOK_GRAPH_URL", default="https://graph.facebook.com/v19.0")

    firebase_project_id: str = _env("FIREBASE_PROJECT_ID", default="", description="Firebase project (phone sign-in)")
    firebase_certs_url: str = _env(
        "NAMELESS_FIREBASE_CERTS_URL",
        default="https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com",
    )

    firebase_credentials_file: str = _env(
        "FIREBASE_CREDENTIALS_FILE", default="",
        description="service account JSON key for push through FCM (unset: push deliveries are skipped)",
    )
    fcm_endpoint: str = _env(
        "NAMELESS_FCM_ENDPOINT", default="", description="another FCM HTTP v1 compatible endpoint (tests)"
    )
    mailchimp_api_key: SecretStr | None = _env(
        "MAILCHIMP_API_KEY", default=None,
        description="Mailchimp Marketing API key (unset: email deliveries are skipped)"
    )
    mailchimp_server: str = _env(
        "MAILCHIMP_SERVER", default="", pattern=r"^[a-z0-9]{0,20}$",
        description="Mailchimp data centre, e.g. us21 (taken from the API key when unset)",
    )
    mailchimp_audience: str = _env("MAILCHIMP_AUDIENCE", default="", description="Mailchimp audience (list) id")
    mailchimp_endpoint: str = _env(
        "NAMELESS_MAILCHIMP_ENDPOINT", default="", description="another Mailchimp Marketing API base (tests)"
    )
    mailchimp_webhook_secret: SecretStr | None = _env(
        "MAILCHIMP_WEBHOOK_SECRET", default=None,
        description="path secret of the Mailchimp webhook (/webhooks/mailchimp/<secret>); unset: no webhook",
    )
    delivery_batch: int = _env(
        "NAMELESS_DELIVERY_BATCH", default=500, ge=1, le=5000, description="outbox deliveries claimed per pass"
    )
    delivery_max_attempts: int = _env(
        "NAMELESS_DELIVERY_MAX_ATTEMPTS", default=8, ge=1, le=50,
        description="attempts before a delivery is marked dead",
    )
    delivery_retry_base_s: float = _env(
        "NAMELESS_DELIVERY_RETRY_BASE", default=5.0, ge=0.01, le=3600,
        description="first retry delay, seconds; doubled per attempt (capped at an hour), with jitter",
    )
    delivery_lease_s: float = _env(
        "NAMELESS_DELIVERY_LEASE", default=60.0, ge=1, le=3600,
        description="how long a claimed delivery stays with its worker before another may take it over",
    )
    delivery_email_threads: int = _env(
        "NAMELESS_DELIVERY_EMAIL_THREADS", default=8, ge=1, le=64,
        description="Mailchimp calls in flight at once (the client library is blocking)",
    )
    push_per_hour: int = _env(
        "NAMELESS_PUSH_PER_HOUR", default=10, ge=1, le=10_000,
        description="non-urgent pushes per user per hour; the rest stay in the inbox only",
    )
    provider_timeout_s: float = _env(
        "NAMELESS_PROVIDER_TIMEOUT_S", default=10.0, ge=0.1, le=300, description="FCM and Mailchimp call timeout"
    )

    gcs_bucket: str = _env("GCS_BUCKET", default="", description="store media in this Google Cloud Storage bucket")
    gcs_credentials_file: str = _env(
        "GCS_CREDENTIALS_FILE", default="", description="service account JSON key (signs V4 URLs)"
    )
    gcs_endpoint: str = _env("NAMELESS_GCS_ENDPOINT", default="", description="another GCS-compatible endpoint")

    stripe_secret_key: SecretStr | None = _env(
        "STRIPE_SECRET_KEY", default=None, description="Stripe secret API key (billing; unset: billing answers 503)"
    )
    stripe_webhook_secret: SecretStr | None = _env(
        "STRIPE_WEBHOOK_SECRET", default=None, description="signing secret of the Stripe webhook endpoint (whsec_...)"
    )
    stripe_api_base: str = _env(
        "NAMELESS_STRIPE_API_BASE", default="", description="another Stripe-compatible API base (tests)"
    )
    stripe_webhook_tolerance: int = _env(
        "NAMELESS_STRIPE_WEBHOOK_TOLERANCE", default=300, ge=1, le=3600,
        description="oldest signed webhook timestamp accepted, seconds",
    )
    stripe_event_lease: int = _env(
        "NAMELESS_STRIPE_EVENT_LEASE", default=60, ge=5, le=3600,
        description="seconds one delivery holds a webhook event while applying it; a process that dies "
                    "mid-apply frees it after this",
    )
    billing_success_url: str = _env(
        "NAMELESS_BILLING_SUCCESS_URL", default="", description="where Stripe Checkout returns after payment"
    )
    billing_cancel_url: str = _env(
        "NAMELESS_BILLING_CANCEL_URL", default="", description="where Stripe Checkout returns when abandoned"
    )
    billing_portal_return_url: str = _env(
        "NAMELESS_BILLING_PORTAL_RETURN_URL", default="", description="where the Stripe customer portal returns"
    )
    billing_grace_days: int = _env(
        "NAMELESS_BILLING_GRACE_DAYS", default=7, ge=0, le=60,
        description="days a past_due subscription keeps playback while Stripe retries the payment",
    )

    @field_validator("stripe_api_base", "fcm_endpoint", "mailchimp_endpoint", "billing_success_url",
                     "billing_cancel_url", "billing_portal_return_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _gcs_needs_credentials(self) -> Settings:
        if self.gcs_bucket and not self.gcs_credentials_file:
            raise ValueError("GCS_CREDENTIALS_FILE must name a service account key when GCS_BUCKET is set")
        return self

    @field_validator("google_client_ids", "apple_client_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("jwt_keys")
    @classmethod
    def _check_jwt_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for pair in value.get_secret_value().split(","):
                kid, _, secret = pair.strip().partition(":")
                if not kid or len(secret) < 32:
                    raise ValueError("each entry must be kid:secret with a secret of at least 32 characters")
        return value

    def jwt_keyring(self, master: bytes) -> tuple[dict[str, bytes], str]:
        """(keys by id, the signing key id)."""
        if self.jwt_keys is None:
            return {"k1": hmac.new(master, b"access-token", hashlib.sha256).digest()}, "k1"
        pairs = [p.strip().partition(":") for p in self.jwt_keys.get_secret_value().split(",")]
        return {kid: secret.encode() for kid, _, secret in pairs}, pairs[0][0]

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
            for origin in origins:
                if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
                    raise ValueError(f"each origin must look like https://host[:port], not {origin!r}")
            return origins
        return value

    @property
    def embedded_mongo(self) -> bool:
        return self.mongo_url is None

    @property
    def proxy_hops(self) -> int:
        """Trusted proxies in front: only the X-Forwarded-For entries they appended count."""
        if self.trusted_proxies is not None:
            return self.trusted_proxies
        return 1 if self.trust_proxy else 0

    @property
    def public_https(self) -> bool:
        """Served over TLS (by a proxy in front, even when the request reaching us is plain HTTP)."""
        return self.public_url.startswith("https://")


def _describe(error: Mapping[str, Any]) -> str:
    loc = error.get("loc") or ("settings",)
    name = str(loc[0])
    message = str(error.get("msg", "invalid value"))
    return f"{name}: {message}"


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: str | Path | None = ".env",
    **overrides: Any,
) -> Settings:
    """Build the settings from `environ` (default: `.env` overlaid by os.environ).

    Tests pass a plain dict; command-line flags arrive as `overrides` by field name.

    Raises SettingsError with one line per bad variable, without the values.
    """
    if environ is None:
        file_values = dotenv_values(env_file) if env_file and Path(env_file).is_file() else {}
        environ = {**{k: v for k, v in file_values.items() if v is not None}, **os.environ}
    try:
        # `REDIS_URL=` (as in a .env template) means "not set", not an invalid value
        values: dict[str, Any] = {k: None if v == "" and k in _EMPTY_IS_UNSET else v
                                  for k, v in environ.items() if k in _ALIASES}
        values.update(_aliased(overrides))
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(e) for e in exc.errors(include_input=False))) from None


_ALIASES = {f.validation_alias: name for name, f in Settings.model_fields.items()}
_FIELDS = {name: alias for alias, name in _ALIASES.items()}
_EMPTY_IS_UNSET = {alias for alias, name in _ALIASES.items() if Settings.model_fields[name].default is None}


def _aliased(overrides: Mapping[str, Any]) -> dict[str, Any]:
    return {_FIELDS[k]: v for k, v in overrides.items() if v is not None}


def describe_variables() -> list[tuple[str, str, str]]:
    """(variable, default, description) for `run.py --help`."""
    rows = []
    for alias, name in _ALIASES.items():
        field = Settings.model_fields[name]
        default = field.default
        shown = "" if default in (None, ()) or isinstance(default, SecretStr) else str(default)
        rows.append((str(alias), shown, field.description or ""))
    return rows
