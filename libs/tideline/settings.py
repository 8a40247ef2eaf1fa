"""Settings shared by every Tideline process, read from TIDELINE_* environment variables."""

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tideline.durations import Duration, millis

# Where `tideline stack up` writes each principal's client settings, in the stack's home.
CREDENTIALS = "credentials"
KAFKA_CONNECTION = frozenset(
    {
        "kafka_security_protocol",
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
    }
)
REDIS_CONNECTION = frozenset({"redis_username", "redis_password"})


def read_credentials(home: Path, principal: str) -> dict[str, str]:
    """The TIDELINE_* lines of `principal`'s file in a secured stack's home."""
    path = home / CREDENTIALS / f"{principal}.env"
    try:
        text = path.read_text()
    except FileNotFoundError:
        known = sorted(p.stem for p in path.parent.glob("*.env"))
        raise ValueError(
            f"no credentials for principal {principal!r} in {path.parent}; one of {known}"
        ) from None
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDELINE_", extra="forbid")

    kafka_bootstrap: str = "localhost:9092"
    # How every Kafka client connects (`tideline.kafka.connection`): a managed cluster
    # (Confluent Cloud, MSK, Aiven) is usually SASL_SSL with PLAIN or SCRAM.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="CA certificates (PEM) the broker's is checked against; default: the system's.",
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None, description="This client's certificate (PEM), for mutual TLS."
    )
    kafka_ssl_keyfile: Path | None = Field(
        default=None, description="Its private key (PEM); default: in the certificate file."
    )
    kafka_ssl_key_password: SecretStr | None = None
    kafka_principal: str | None = Field(
        default=None,
        description="On the local secured stack, whose credentials (in the home) a client"
        " with no TIDELINE_KAFKA_SASL_* of its own connects with: default, a service's own"
        " name in a service, `admin` (the stack's owner) elsewhere.",
    )
    redis_url: str = "redis://localhost:6379/0"
    # Redis' user and password, unless the URL carries them (redis://user:pass@host).
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    topic_prefix: str = "tideline."
    home: Path = Field(
        default=Path.home() / ".tideline",
        description="Where the local stack keeps its data, logs and pid files.",
    )
    cache: Path = Field(
        default=Path.home() / ".cache" / "tideline",
        description="Downloaded jars, shared by every stack home.",
    )
    project: Path = Field(
        default=Path("examples/cards/project.yaml"),
        description="The project definition every service loads (YAML or Python module).",
    )
    kafka_controller_port: int = Field(
        default=9093, description="KRaft controller port of the local broker."
    )
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Replicas of each topic `topics create` makes; default: the catalog's,"
        " capped at the brokers the cluster has.",
    )
    training_retention: Duration | None = Field(
        default=None,
        description="How long `features` and `labels` keep their records (default: the"
        " catalog's 7 days): training joins labels, and datasets are rebuilt, only within it."
        " Each day costs a day of both topics' bytes on every replica.",
    )
    models_signing_key: Path | None = Field(
        default=None,
        description="The registry's Ed25519 key, PEM, made at its first start if missing"
        " (default: keys/models.ed25519 in the home). Every registry worker needs the same.",
    )
    models_public_key: str | None = Field(
        default=None,
        description="The registry's public key, as `tideline models public-key` prints it:"
        " what model records must be signed with. Default: read from its file.",
    )
    models_public_key_file: Path | None = Field(
        default=None,
        description="A file holding that key (base64 or PEM); default: beside the signing key.",
    )
    native_threads: int = Field(
        default=1,
        description="Threads of the numeric libraries (OpenMP, BLAS) in each service.",
    )

    @model_validator(mode="after")
    def _local_credentials(self) -> "Settings":
        """On the local secured stack, a process told nothing of how to connect takes
        its principal's credentials from the home: Kafka's, and Redis' where it has a
        user there (the feature store, serving, admin)."""
        if not (self.home / CREDENTIALS).is_dir():
            return self
        wanted = [
            group
            for group in (KAFKA_CONNECTION, REDIS_CONNECTION)
            if not self.model_fields_set & group
            and not (group is REDIS_CONNECTION and "@" in self.redis_url)
        ]
        if not wanted:
            return self
        found = read_credentials(self.home, self.kafka_principal or "admin")
        given = {
            name: found[key]
            for group in wanted
            for name in group
            if (key := f"TIDELINE_{name.upper()}") in found
        }
        # Validated as if they were set: a file that says something else is an error.
        checked = self.model_validate(self.model_dump() | given)
        for name in given:
            setattr(self, name, getattr(checked, name))
        return self

    @model_validator(mode="after")
    def _kafka_credentials(self) -> "Settings":
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and (self.kafka_sasl_username is None or self.kafka_sasl_password is None):
            raise ValueError(
                f"TIDELINE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs"
                " TIDELINE_KAFKA_SASL_USERNAME and TIDELINE_KAFKA_SASL_PASSWORD"
            )
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError("TIDELINE_KAFKA_SSL_KEYFILE needs TIDELINE_KAFKA_SSL_CERTFILE")
        return self

    def retention_ms(self, catalog_ms: int, training: bool) -> int:
        """A topic's retention: `training_retention` for the topics training reads, if set."""
        if training and self.training_retention is not None:
            return millis(self.training_retention)
        return catalog_ms

    @property
    def kafka_host_port(self) -> tuple[str, int]:
        first = self.kafka_bootstrap.split(",")[0]
        host, _, port = first.rpartition(":")
        return host or "localhost", int(port)

    @property
    def redis_credentials(self) -> dict[str, Any]:
        """What redis-py's `from_url` takes beside the URL (whose own user and password win)."""
        password = self.redis_password
        return {
            "username": self.redis_username,
            "password": None if password is None else password.get_secret_value(),
        }

    @property
    def redis_host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.redis_url)
        return parts.hostname or "localhost", parts.port or 6379


class ServiceSettings(BaseSettings):
    """What every service's own settings have; each sets its env prefix and metrics port."""

    model_config = SettingsConfigDict(extra="forbid")

    metrics_port: int = Field(default=0, description="Prometheus /metrics; 0 turns it off.")
    group_id: str | None = Field(
        default=None,
        description="Its consumer group; default: the topic prefix, its name and the"
        " model's. On a secured cluster a service may use only groups named"
        " `<topic prefix><its name>...` (the catalog's ACLs).",
    )
    offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where a consumer group with no committed offsets starts reading.",
    )
