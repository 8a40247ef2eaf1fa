"""aiokafka clients configured the Tideline way, and topic administration from the catalog."""

import asyncio
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.helpers import create_ssl_context

from tideline import access, catalog
from tideline.errors import StackError
from tideline.settings import KAFKA_CONNECTION, Settings


def connection(settings: Settings) -> dict[str, Any]:
    """Where and how every client connects: the one place the security settings are read."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # the settings' validator saw to it
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return options


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    key_password = settings.kafka_ssl_key_password
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            password=None if key_password is None else key_password.get_secret_value(),
        )
    except (OSError, ssl.SSLError) as exc:  # a missing file, a key that does not fit
        raise StackError(f"the Kafka TLS settings cannot be used: {exc}") from exc
    return context


def producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer: acks from all replicas, no duplicates on retry."""
    options: dict[str, Any] = {
        **connection(settings),
        "enable_idempotence": True,
        "acks": "all",
        "max_request_size": catalog.max_message_bytes(),
        "linger_ms": 5,
    }
    return AIOKafkaProducer(**(options | overrides))


def consumer(
    settings: Settings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer whose fetch limits admit the largest record of any topic.

    A fetch limit below a record's size would wedge its partition; offsets are
    committed by the caller after its output is acknowledged (at-least-once).
    """
    fetch_limit = catalog.max_message_bytes()
    options: dict[str, Any] = {
        **connection(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": fetch_limit,
        "fetch_max_bytes": max(fetch_limit, 52428800),
        "isolation_level": "read_committed",
    }
    return AIOKafkaConsumer(*topics, **(options | overrides))


@asynccontextmanager
async def started(*clients: AIOKafkaConsumer | AIOKafkaProducer) -> AsyncIterator[None]:
    """Clients started, and stopped on the way out (in reverse order), whatever happens."""
    async with AsyncExitStack() as stack:
        for client in clients:
            await client.start()
            stack.push_async_callback(client.stop)
        yield


# How long a reader's fetch waits on the broker for new records. Readers read up to ends
# already there, so none needs to wait; and a consumer stops only once its fetch in
# flight returns (500 ms by default).
READ_WAIT_MS = 20


class Readers:
    """Started consumers without a group, lent to one borrower at a time and kept for the
    next, and one admin client: a service reads offset ranges (a data set, an artifact)
    again and again, and each new client costs a TLS and SCRAM handshake with every broker
    it talks to, and a metadata round trip (0.1 to 0.2 s here, each time)."""

    def __init__(self, settings: Settings) -> None:
        self.key = _who(settings)
        self.idle: list[AIOKafkaConsumer] = []
        self.admin: AIOKafkaAdminClient | None = None

    def serves(self, settings: Settings) -> bool:
        return _who(settings) == self.key

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for client in idle:
            await client.stop()
        if self.admin is not None:
            await self.admin.close()
            self.admin = None


def _who(settings: Settings) -> tuple[Any, ...]:
    """Which cluster, as whom: clients of equal ones are interchangeable."""
    fields = ("kafka_bootstrap", *sorted(KAFKA_CONNECTION), "kafka_ssl_certfile")
    return tuple(getattr(settings, f) for f in fields)


_readers: ContextVar[Readers | None] = ContextVar("readers", default=None)


@asynccontextmanager
async def readers(settings: Settings) -> AsyncIterator[Readers]:
    """Within it (and in tasks started within it), `reader` and `administered` for these
    settings lend clients that are kept; they are stopped on the way out."""
    pool = Readers(settings)
    token = _readers.set(pool)
    try:
        yield pool
    finally:
        _readers.reset(token)
        await pool.close()


def _pool(settings: Settings) -> Readers | None:
    pool = _readers.get()
    return pool if pool is not None and pool.serves(settings) else None


@asynccontextmanager
async def reader(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer without a group, to assign and seek as the borrower needs: one of
    the open `readers`' if there are, else a new one, stopped afterwards."""
    pool = _pool(settings)
    if pool is not None and pool.idle:
        client = pool.idle.pop()
    else:
        client = consumer(settings, group_id=None, fetch_max_wait_ms=READ_WAIT_MS)
        await client.start()
    try:
        yield client
    except BaseException:
        await client.stop()  # whatever it was doing is unknown: it is not lent again
        raise
    if pool is None:
        await client.stop()
        return
    # paused, an idle one fetches nothing; the next borrower's `assign` replaces it all
    client.pause(*client.assignment())
    pool.idle.append(client)


@asynccontextmanager
async def administered(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client: the open `readers`' (shared: requests are independent),
    or a new one closed afterwards."""
    pool = _pool(settings)
    if pool is None:
        async with admin_session(settings) as client:
            yield client
        return
    if pool.admin is None:
        pool.admin = admin(settings)
        await pool.admin.start()
    yield pool.admin


# How long an admin request is retried on retriable errors before it fails.
ADMIN_RETRY_S = 30.0


class _Admin(AIOKafkaAdminClient):  # type: ignore[misc]  # aiokafka's admin is partly untyped
    """aiokafka's admin client sends a request without a node to a random broker of the
    metadata it has, a broker lost a moment ago included, and fails with NodeNotReady.
    Retried, it picks again: with one broker of three down, a service that starts or
    looks up a topic then carries on instead of exiting."""

    async def _send_request(self, request: Any, node_id: int | None = None) -> Any:
        deadline = asyncio.get_running_loop().time() + ADMIN_RETRY_S
        while True:
            try:
                return await super()._send_request(request, node_id)
            except KafkaError as exc:
                if not exc.retriable or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)


def admin(settings: Settings) -> AIOKafkaAdminClient:
    return _Admin(**connection(settings))


@asynccontextmanager
async def admin_session(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on the way out."""
    client = admin(settings)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def adopt_offsets(
    settings: Settings, group: str, former: str, topics: Sequence[str]
) -> dict[TopicPartition, int]:
    """If `group` has committed nothing on `topics` and `former` has, commit `former`'s
    offsets as `group`'s: a renamed group carries on where the old one was. Returns
    what was taken over."""
    async with admin_session(settings) as client:
        mine = await _group_offsets(client, group)
        if any(tp.topic in topics for tp in mine):
            return {}
        theirs = {
            tp: found.offset
            for tp, found in (await _group_offsets(client, former)).items()
            if tp.topic in topics and found.offset >= 0
        }
    if theirs:
        taker = consumer(settings, group_id=group)
        async with started(taker):
            taker.assign(list(theirs))
            await taker.commit(theirs)
    return theirs


async def _group_offsets(client: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, Any]:
    """A group's committed offsets. On a new cluster the first ask makes the broker create
    its offsets topic, and it answers "coordinator not available" until that is done."""
    async with asyncio.timeout(60):
        while True:
            try:
                found: dict[TopicPartition, Any] = await client.list_consumer_group_offsets(group)
                return found
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                await asyncio.sleep(0.2)


@dataclass(frozen=True)
class TopicState:
    name: str
    created: bool  # False: it was there already


async def create_topics(settings: Settings) -> list[TopicState]:
    """Create every catalog topic that is missing (existing ones are left as they are)
    and, on a cluster that authorizes, grant the catalog's principals their ACLs."""
    async with admin_session(settings) as client:
        existing = set(await client.list_topics())
        brokers = len((await client.describe_cluster())["brokers"])
        wanted = {t.full_name(settings): t for t in catalog.topics().values()}
        missing = []
        for full, t in wanted.items():
            if full not in existing:
                replicas = t.replicas(brokers, settings)
                missing.append(
                    NewTopic(
                        full, t.partitions, replicas, topic_configs=t.configs(replicas, settings)
                    )
                )
        if missing:
            response = await client.create_topics(missing)
            for name, code, *message in response.topic_errors:
                # Another process may have created it between our list and create.
                if code not in (0, TopicAlreadyExistsError.errno):
                    error = for_code(code)
                    raise error(f"cannot create {name}: {message[-1] if message else ''}")
            await _until_ready(client, [t.name for t in missing])
        if settings.training_retention is not None:  # on topics made before it was set
            kept = [(full, t) for full, t in wanted.items() if t.training and full in existing]
            await _retain(client, settings, brokers, kept)
        await access.grant(client, settings)
        created = {t.name for t in missing}
        return [TopicState(full, full in created) for full in wanted]


async def _retain(
    client: AIOKafkaAdminClient,
    settings: Settings,
    brokers: int,
    topics: list[tuple[str, catalog.Topic]],
) -> None:
    """Give existing topics the configuration the catalog and settings make now (their
    retention): the broker's AlterConfigs replaces a topic's whole configuration."""
    if not topics:
        return
    resources = [
        ConfigResource(
            ConfigResourceType.TOPIC,
            full,
            configs=t.configs(t.replicas(brokers, settings), settings),
        )
        for full, t in topics
    ]
    for response in await client.alter_configs(resources):
        for code, message, _, name in response.resources:
            if code != 0:
                raise for_code(code)(f"cannot set the retention of {name}: {message}")
    # The controller acknowledges before the broker applies it from the metadata log:
    # until then the broker still describes (and enforces) the old configuration.
    wanted = {r.name: (r.configs or {})["retention.ms"] for r in resources}
    async with asyncio.timeout(30):
        while True:
            described = await client.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
            )
            found = {
                resource[3]: dict((entry[0], entry[1]) for entry in resource[4])
                for response in described
                for resource in response.resources
            }
            if all(found.get(n, {}).get("retention.ms") == v for n, v in wanted.items()):
                return
            await asyncio.sleep(0.1)


async def _until_ready(client: AIOKafkaAdminClient, names: list[str]) -> None:
    """Wait until the broker's metadata shows every partition of `names` with a leader.

    The controller acknowledges a creation before the broker serves it; a producer
    that raced ahead would see UnknownTopicOrPartition.
    """
    async with asyncio.timeout(30):
        while True:
            described = await client.describe_topics(names)
            if all(
                t["error_code"] == 0
                and t["partitions"]
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.1)


async def existing_topics(settings: Settings) -> set[str]:
    async with admin_session(settings) as client:
        return set(await client.list_topics())


async def topics_under(settings: Settings, prefix: str) -> list[str]:
    """The topics whose names start with `prefix` (a non-empty one), Kafka's own excepted."""
    if not prefix:
        raise StackError("a prefix is needed: an empty one would name every topic")
    return sorted(
        t for t in await existing_topics(settings) if t.startswith(prefix) and t[:2] != "__"
    )


DELETE_BATCH = 100  # topics per request: one request for thousands could outlast its timeout


async def delete_topics(settings: Settings, names: Sequence[str]) -> None:
    """Delete `names` and every record in them; one already gone is no error. Returns once
    the broker lists none of them: the controller acknowledges first, deletes after."""
    async with admin_session(settings) as client:
        for start in range(0, len(names), DELETE_BATCH):
            response = await client.delete_topics(list(names[start : start + DELETE_BATCH]))
            for name, code, *_ in response.topic_error_codes:
                if code not in (0, UnknownTopicOrPartitionError.errno):
                    raise for_code(code)(f"cannot delete {name}")
        async with asyncio.timeout(60):
            while True:
                if not set(names) & set(await client.list_topics()):
                    return
                await asyncio.sleep(0.1)


async def require(settings: Settings, *topics: catalog.Topic) -> None:
    """Fail clearly if a catalog topic a service needs is missing (the broker creates none)."""
    wanted = {t.full_name(settings) for t in topics}
    missing = sorted(wanted - await existing_topics(settings))
    if missing:
        raise StackError(f"missing topics {missing}: run `tideline topics create`")


async def partitions(settings: Settings, topic: str) -> list[int]:
    """The topic's partitions; StackError if it does not exist (a reader of it would
    otherwise wait on nothing until cancelled)."""
    async with administered(settings) as client:
        (described,) = await client.describe_topics([topic])
    if described["error_code"] or not described["partitions"]:
        raise StackError(
            f"topic {topic} does not exist: run `tideline topics create`, or check"
            f" TIDELINE_TOPIC_PREFIX ({settings.topic_prefix!r})"
        )
    return sorted(p["partition"] for p in described["partitions"])
