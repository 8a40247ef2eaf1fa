"""The local stack's secrets: a certificate authority, the brokers' TLS keystore, one
SCRAM-SHA-512 credential per principal and Redis' users, made once into `$TIDELINE_HOME`
(folders only its user may open) when `tideline stack up` first formats a secured cluster.

Principals: `broker` (the brokers among themselves, a super user), `admin` (the stack's
owner: topics, ACLs, the CLI, the demo; a super user) and every principal of the
catalog, granted its ACLs by `topics create`. A client of the stack with no connection
settings of its own takes its principal's file from `credentials/` (`Settings`).
"""

import datetime
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tideline import catalog
from tideline.settings import CREDENTIALS, REDIS_CONNECTION, Settings, read_credentials

MECHANISM = "SCRAM-SHA-512"
SUPER_USERS = ("broker", "admin")
VALID_DAYS = 3650
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
# Redis' users and what each may run (its ACL rules): the feature store writes through
# its script, serving only reads, the owner does anything; nobody else has a user.
REDIS_USERS = {
    "admin": "&* +@all",
    "featurestore": "+@read +@write +@scripting +ping",
    "serving": "+get +mget +ping",
}


def principals() -> list[str]:
    return [*SUPER_USERS, *catalog.principals()]


@dataclass(frozen=True)
class Secrets:
    home: Path

    @property
    def tls(self) -> Path:
        return self.home / "tls"

    @property
    def ca(self) -> Path:
        return self.tls / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.tls / "broker.p12"

    @property
    def keystore_password(self) -> str:
        return (self.tls / "broker.p12.password").read_text().strip()

    @property
    def redis_users(self) -> Path:
        return self.tls / "redis-users.acl"

    def redis_options(self) -> list[str]:
        """redis-server's arguments: the users above, from a file only the user reads
        (on the command line, any local user's `ps` would show the passwords)."""
        return ["--aclfile", str(self.redis_users)] if self.redis_users.exists() else []

    def password(self, principal: str) -> str:
        return read_credentials(self.home, principal)["TIDELINE_KAFKA_SASL_PASSWORD"]

    def client(self, principal: str) -> dict[str, str]:
        """The TIDELINE_* settings of a client connecting as `principal`."""
        return read_credentials(self.home, principal)

    def settings(self, principal: str, base: Settings) -> Settings:
        """`base` connecting as `principal`, whatever the environment says."""
        given = {k.removeprefix("TIDELINE_").lower(): v for k, v in self.client(principal).items()}
        unset = dict.fromkeys(REDIS_CONNECTION)  # a principal with no Redis user has none
        return Settings.model_validate(base.model_dump() | unset | given)

    def scram(self) -> list[str]:
        """Every principal's credential, as the storage tool's `--add-scram` takes it."""
        return [f"{MECHANISM}=[name={p},password={self.password(p)}]" for p in principals()]

    def broker_config(self) -> list[str]:
        """A node's lines: SASL_SSL for clients and between brokers, the controller's
        listener on mutual TLS (its clients are brokers holding the CA's certificate),
        StandardAuthorizer with nothing allowed that no ACL grants."""
        return [
            f"ssl.keystore.type=PKCS12\nssl.keystore.location={self.keystore}",
            f"ssl.keystore.password={self.keystore_password}",
            f"ssl.truststore.type=PEM\nssl.truststore.location={self.ca}",
            "listener.name.controller.ssl.client.auth=required",
            "ssl.principal.mapping.rules=RULE:^CN=([^,]*)$/$1/,DEFAULT",
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={SCRAM_MODULE}"
            f' required username="broker" password="{self.password("broker")}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users={';'.join(f'User:{p}' for p in SUPER_USERS)}",
        ]


def client_config(
    secrets: Secrets, principal: str, bootstrap: str, form: Literal["env", "java", "librdkafka"]
) -> list[str]:
    """`principal`'s connection as TIDELINE_* lines, Java client properties or librdkafka's
    (kcat -F); ValueError for a principal the home has no credentials of."""
    found = secrets.client(principal)
    user, password = principal, found["TIDELINE_KAFKA_SASL_PASSWORD"]
    if form == "env":
        return [f"TIDELINE_KAFKA_BOOTSTRAP={bootstrap}", *(f"{k}={v}" for k, v in found.items())]
    common = [f"bootstrap.servers={bootstrap}", "security.protocol=SASL_SSL"]
    if form == "java":
        return [
            *common,
            f"sasl.mechanism={MECHANISM}",
            f'sasl.jaas.config={SCRAM_MODULE} required username="{user}" password="{password}";',
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={secrets.ca}",
        ]
    return [
        *common,
        f"sasl.mechanisms={MECHANISM}",
        f"sasl.username={user}",
        f"sasl.password={password}",
        f"ssl.ca.location={secrets.ca}",
    ]


# The option each of Kafka's tools reads a client configuration from.
TOOL_CONFIG = {
    "console-producer": "--producer.config",
    "console-consumer": "--consumer.config",
    "consumer-groups": "--command-config",
    "topics": "--command-config",
}


def tool_config(settings: Settings, tool: str, args: Sequence[str]) -> list[str]:
    """The arguments that connect Kafka's tool `tool` to the secured local stack as
    `settings`' principal, written to a file only the user may read; none when the stack
    is plaintext or `args` name a configuration already."""
    secrets = secured(settings.home)
    option = TOOL_CONFIG[tool]
    if secrets is None or option in args:
        return []
    principal = settings.kafka_principal or "admin"
    path = secrets.home / CREDENTIALS / f"{principal}.properties"
    lines = client_config(secrets, principal, settings.kafka_bootstrap, "java")
    _private_file(path, "".join(f"{line}\n" for line in lines).encode())
    return [option, str(path)]


def secured(home: Path) -> Secrets | None:
    """The home's secrets, if its stack is secured."""
    return Secrets(home) if (home / CREDENTIALS).is_dir() else None


def make(settings: Settings) -> Secrets:
    """Make the home's secrets (a new CA, keystore and passwords) unless it has them."""
    found = Secrets(settings.home)
    if secured(settings.home):
        return found
    _private_dir(found.tls)
    ca_key, ca = _authority()
    key, certificate = _certificate(settings.kafka_host_port[0], ca_key, ca)
    password = secrets.token_urlsafe(24)
    _private_file(found.ca, ca.public_bytes(serialization.Encoding.PEM))
    _private_file(found.tls / "broker.p12.password", password.encode())
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    keystore = pkcs12.serialize_key_and_certificates(b"broker", key, certificate, [ca], encryption)
    _private_file(found.keystore, keystore)
    # The folder last: its presence says the stack is secured, with all of the above.
    staging = settings.home / f"{CREDENTIALS}.new"
    _private_dir(staging)
    # The default user needs a password, not to be off: Redis 7.0 replays the feature
    # store's scripts from its append-only file as that user, and refuses them when it
    # may not run them (the data would be lost on restart). Nobody is given this one.
    users = [f"user default on >{secrets.token_urlsafe(32)} ~* &* +@all"]
    for principal in principals():
        lines = {
            "TIDELINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "TIDELINE_KAFKA_SASL_MECHANISM": MECHANISM,
            "TIDELINE_KAFKA_SASL_USERNAME": principal,
            "TIDELINE_KAFKA_SASL_PASSWORD": secrets.token_urlsafe(24),
            "TIDELINE_KAFKA_SSL_CAFILE": str(found.ca),
        }
        if principal in REDIS_USERS:
            password = secrets.token_urlsafe(24)
            lines |= {"TIDELINE_REDIS_USERNAME": principal, "TIDELINE_REDIS_PASSWORD": password}
            users.append(f"user {principal} on >{password} ~* {REDIS_USERS[principal]}")
        text = "".join(f"{k}={v}\n" for k, v in lines.items())
        _private_file(staging / f"{principal}.env", text.encode())
    _private_file(found.redis_users, "".join(f"{u}\n" for u in users).encode())
    staging.rename(settings.home / CREDENTIALS)
    return found


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def _private_file(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def _authority() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        _builder("Tideline local CA", _name("Tideline local CA"), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def _certificate(
    host: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The brokers' certificate: server to clients, client to the controllers (CN=broker)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    if host not in ("localhost", "127.0.0.1"):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    certificate = (
        _builder("broker", ca.subject, key)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, certificate
