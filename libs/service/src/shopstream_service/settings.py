"""Every setting a service reads, from the environment (``SHOPSTREAM_*``) — the configuration
reference for deployments. Only ``bootstrap.py`` modules read it."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "shopstream-local-development-only"
DEV_ISSUER = "https://auth.shopstream.local"
DEV_AUDIENCE = "shopstream"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_", extra="ignore")

    store_url: str = Field(
        default="sqlite:///.local/data/{service}.sqlite",
        description="Event store (and read models, unless SHOPSTREAM_READMODEL_URL is set): "
        "sqlite:///<path> (embedded), postgresql://... (a schema per service) or kurrentdb://... "
        "(streams prefixed by the service; {service} is replaced by the service name).",
    )
    readmodel_url: str | None = Field(
        default=None,
        description="Where projections live when not beside the events (required with a KurrentDB "
        "store): sqlite:///<path> or postgresql://... ({service} replaced).",
    )
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    http_port: int = Field(default=8000, description="Port of the HTTP API.")
    jwt_issuer: str = Field(default=DEV_ISSUER, description="Required `iss` of bearer tokens.")
    jwt_audience: str = Field(default=DEV_AUDIENCE, description="Required `aud` of bearer tokens.")
    jwt_secret: str | None = Field(
        default=DEV_JWT_SECRET, description="HS256 key (local development); unset it in production."
    )
    jwt_public_key: str | None = Field(
        default=None, description="PEM public key (RS256/ES256) of the token issuer; wins over the secret."
    )
    clock_control: bool = Field(
        default=False, description="Expose POST /admin/clock to move this service's clock (tests, demo)."
    )
    log_level: str = Field(default="INFO", description="Log level of the JSON logs.")
    consumer_group: str | None = Field(
        default=None, description="Kafka consumer group of the inbox (default shopstream.<service>.inbox)."
    )

    def store_url_for(self, service: str) -> str:
        return self.store_url.replace("{service}", service)

    def readmodel_url_for(self, service: str) -> str | None:
        return None if self.readmodel_url is None else self.readmodel_url.replace("{service}", service)
