"""The online store on a redis-server with ACL users and TLS: the feature store's user
writes, serving's only reads, a client without the password is refused, and
`TIDELINE_REDIS_URL` carries the user, the password and `rediss://`."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from tideline import project
from tideline.durations import epoch_millis
from tideline.online_store import Entry, OnlineStore, OnlineWriter
from tideline.settings import Settings

from ops.launcher import free_port
from ops.stack.redis_server import RedisServer

from ..projects import EXAMPLES
from .pki import make as make_pki

pytestmark = pytest.mark.integration

CARDS = project.load(EXAMPLES[0])
PREFIX = "secured."
# Least privilege: the feature store's write script and marks; serving's GET and MGET.
USERS = {
    "featurestore": ("fs-secret", "+@read +@write +@scripting +ping"),
    "serving": ("sv-secret", "+get +mget +ping"),
}


@dataclass(frozen=True)
class SecuredRedis:
    port: int
    tls_port: int
    ca: Path

    def settings(self, url: str) -> Settings:
        return Settings(redis_url=url, topic_prefix=PREFIX)

    def url(self, user: str, password: str | None = None, tls: bool = False) -> str:
        secret = USERS[user][0] if password is None else password
        scheme, port = ("rediss", self.tls_port) if tls else ("redis", self.port)
        query = f"?ssl_ca_certs={self.ca}" if tls else ""
        return f"{scheme}://{user}:{secret}@localhost:{port}/0{query}"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    home = tmp_path_factory.mktemp("secured-redis")
    pki = make_pki(home / "pki")
    port, tls_port = free_port(), free_port()
    users = [
        arg
        for name, (secret, commands) in USERS.items()
        for arg in ("--user", name, "on", f">{secret}", f"~{PREFIX}*", *commands.split())
    ]  # each rule its own argument: redis-server quotes an argument with spaces whole
    tls = [
        *("--tls-port", str(tls_port), "--tls-auth-clients", "no"),
        *("--tls-cert-file", str(pki / "server.pem"), "--tls-key-file", str(pki / "server.key")),
    ]
    found = SecuredRedis(port, tls_port, pki / "ca.pem")
    writer = found.settings(found.url("featurestore")).model_copy(update={"home": home})
    server = RedisServer(writer, ["--user", "default", "off", *users, *tls])
    server.start()
    try:
        yield found
    finally:
        server.process.stop()


def _entry(entity: str, count: int) -> Entry:
    values = {name: None for name in CARDS.features.names} | {"tx_count_10m": count}
    return Entry(entity, f"e-{count}", epoch_millis(datetime.now(UTC)), count, values)


async def test_the_feature_store_writes_and_serving_reads(secured: SecuredRedis) -> None:
    writer = OnlineWriter(secured.settings(secured.url("featurestore")), CARDS)
    try:
        assert (await writer.write([_entry("c1", 3)])).keys == 1
    finally:
        await writer.close()
    for tls in (False, True):
        reader = OnlineStore(secured.settings(secured.url("serving", tls=tls)), CARDS)
        try:
            (found,) = reader.get(["c1"])
            assert found.values["tx_count_10m"] == 3, tls
        finally:
            reader.close()


def test_serving_cannot_write(secured: SecuredRedis) -> None:
    writer = OnlineStore(secured.settings(secured.url("featurestore")), CARDS)
    reader = OnlineStore(secured.settings(secured.url("serving")), CARDS)
    try:
        writer.write([_entry("c2", 5)])
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.write([_entry("c2", 6)])
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.client.set(f"{PREFIX}cards:c2", b"forged")
        (found,) = reader.get(["c2"])
        assert found.values["tx_count_10m"] == 5
    finally:
        writer.close()
        reader.close()


def _read(settings: Settings) -> None:
    store = OnlineStore(settings, CARDS)  # connects at once: one connection, no pool
    try:
        store.get(["c1"])
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:{port}/0",  # no user at all
        "redis://serving:wrong@localhost:{port}/0",
        "redis://mallory:sv-secret@localhost:{port}/0",
    ],
    ids=["no-password", "wrong-password", "unknown-user"],
)
def test_a_client_without_the_password_is_refused(secured: SecuredRedis, url: str) -> None:
    with pytest.raises(redis.exceptions.AuthenticationError):
        _read(secured.settings(url.format(port=secured.port)))


def test_plaintext_to_the_tls_port_is_refused(secured: SecuredRedis) -> None:
    url = secured.url("serving").replace(str(secured.port), str(secured.tls_port))
    with pytest.raises(redis.exceptions.ConnectionError):
        _read(secured.settings(url))
