"""The serving service's configuration, from TIDELINE_SERVING_* environment variables."""

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
        return self
