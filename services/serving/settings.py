"""The serving service's configuration, from TIDELINE_SERVING_* environment variables."""

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from tideline.settings import ServiceSettings


class ServingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_SERVING_", extra="forbid")

    metrics_port: int = 9103
    model_name: str | None = Field(default=None, description="Default: the project's name.")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, description="Request-time scoring; 0 turns it off.")
    token: SecretStr | None = Field(
        default=None,
        description="A bearer token POST /score requires (Authorization: Bearer <token>),"
        " answering 401 without it; none: open, as on a developer's machine.",
    )
    tls_certfile: Path | None = Field(
        default=None, description="Serve HTTPS with this certificate (PEM, chain included)."
    )
    tls_keyfile: Path | None = Field(
        default=None, description="Its private key (PEM); default: in the certificate file."
    )
    shadow: bool = Field(default=True, description="Score with the challenger too, in shadow.")
    stream: bool = Field(
        default=True,
        description="Score the features stream; false: request-time scoring only, in a"
        " process of its own beside the one that scores the stream.",
    )

    @model_validator(mode="after")
    def _something_to_serve(self) -> Self:
        if not self.stream and not self.http_port:
            raise ValueError("STREAM false and HTTP_PORT 0 leave serving nothing to do")
        if self.tls_keyfile is not None and self.tls_certfile is None:
            raise ValueError("TIDELINE_SERVING_TLS_KEYFILE needs TIDELINE_SERVING_TLS_CERTFILE")
        return self
