"""A service declared once, and the one runner that starts any of them.

A service is a `Service`: its name, its settings class, the catalog topics it consumes,
produces and reads besides, and a job factory. The runner does the rest, the same way
for all six: settings, then JSON logs, /metrics, native thread limits and SIGTERM; the
project; the topic checks; the producer; the schema store (what it writes registered,
every version of what it reads known); the job; the consumer and `streams.run`,
which writes every record a job refuses to the dead-letter topic.
"""

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import threadpoolctl
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from prometheus_client import Counter, Gauge, start_http_server
from pythonjsonlogger.json import JsonFormatter

from tideline import catalog, dlq, kafka, project, schema_store, streams
from tideline.settings import ServiceSettings, Settings

log = logging.getLogger(__name__)

LAST_POLL = Gauge(
    "tideline_last_poll_timestamp_seconds",
    "When the service last polled Kafka: its liveness signal.",
    ["service"],
)
CONSUMED = Counter(
    "tideline_records_consumed_total", "Records polled, by topic: throughput.", ["service", "topic"]
)
CONSUMER_LAG = Gauge(
    "tideline_consumer_lag",
    "Records between the service's position and the end of each partition it is assigned.",
    ["service", "topic", "partition"],
)
DEAD_LETTERS = Counter(
    "tideline_dead_letters_total",
    "Records refused and written to the dead-letter topic.",
    ["service", "topic", "stage", "reason"],
)

S = TypeVar("S", bound=ServiceSettings)
T = TypeVar("T")

# What `setup` limited the numeric libraries to; `to_thread` applies it in worker threads.
_native_threads = 1


@dataclass
class Context(Generic[S]):
    """What a job factory is handed: settings, project, a started producer, the stop event."""

    name: str
    settings: Settings
    own: S
    project: project.Project
    producer: AIOKafkaProducer
    stop: asyncio.Event
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def topic(self, handle: catalog.Topic) -> catalog.Bound:
        """`handle` with this process's prefix and the project's schemas."""
        return handle.bind(self.settings, self.project.derived_schemas)

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` beside the loop; when it ends, for whatever reason, the service stops
        (and raises what ended it)."""
        task = asyncio.create_task(work)
        task.add_done_callback(lambda _: self.stop.set())
        self._tasks.append(task)

    async def wait(self, event: asyncio.Event) -> None:
        """Until `event` (or a stop), with the liveness heartbeat every second."""
        while not (event.is_set() or self.stop.is_set()):
            heartbeat(self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 1)

    async def close(self) -> None:
        """Cancel the background work; raise what failed it, if anything did."""
        failed = [t for t in self._tasks if t.done() and not t.cancelled() and t.exception()]
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if failed:
            await failed[0]


@dataclass
class Job(streams.Job):
    """A loop's job, and how the consumer joins its group."""

    listener: ConsumerRebalanceListener | None = None  # state that follows partitions


# A job factory: set up with the context, yield the job (None: this process consumes
# nothing, e.g. serving with its stream off), clean up after the loop has stopped.
JobFactory = Callable[[Context[S]], AbstractAsyncContextManager[Job | None]]


@dataclass(frozen=True)
class Service(Generic[S]):
    name: str
    settings: type[S]
    consumes: tuple[catalog.Topic, ...]
    produces: tuple[catalog.Topic, ...]
    job: JobFactory[S]
    reads: tuple[catalog.Topic, ...] = ()  # read outside the consumer group (follows, backfills)

    @property
    def topics(self) -> tuple[catalog.Topic, ...]:
        """Every topic it touches, the dead-letter and schema topics included: all must exist."""
        touched = (*self.consumes, *self.produces, *self.reads, dlq.TOPIC, schema_store.TOPIC)
        return tuple(dict.fromkeys(touched))

    def group(self, settings: Settings, own: S, project_name: str) -> str:
        """Its consumer group: one per prefix, service and model (project), so two models'
        services on one stack never share one."""
        return own.group_id or f"{settings.topic_prefix}{self.name}.{project_name}"

    def former_group(self, settings: Settings) -> str:
        """The group's name before it was per model: its offsets are taken over once."""
        return f"{settings.topic_prefix}{self.name}"


def run(declared: Service[Any]) -> None:
    """`tideline run NAME`: the service until SIGTERM or SIGINT."""
    asyncio.run(serve(declared))


async def serve(declared: Service[S]) -> None:
    settings, own = Settings(), declared.settings()
    if settings.kafka_principal is None:  # on the local secured stack, as itself
        settings = Settings(kafka_principal=declared.name)
    stop = setup(declared.name, own.metrics_port, settings.native_threads)
    definition = project.load(settings.project)
    await kafka.require(settings, *declared.topics)
    producer = kafka.producer(settings)
    derived = definition.derived_schemas
    writes = [t.bind(settings, derived).schema for t in (*declared.produces, dlq.TOPIC)]
    async with (
        kafka.readers(settings),  # the job's range reads reuse their clients
        kafka.started(producer),
        schema_store.opened(settings, declared.name, derived.values(), writes, producer),
    ):
        context = Context(declared.name, settings, own, definition, producer, stop)
        async with declared.job(context) as job:
            try:
                if job is None or stop.is_set():
                    await context.wait(stop)
                else:
                    await _consume(declared, context, job)
            finally:
                await context.close()  # background work ends before the job cleans up


async def _consume(declared: Service[S], context: Context[S], job: Job) -> None:
    settings, name = context.settings, declared.name
    dead_letters = context.topic(dlq.TOPIC).name
    group = declared.group(settings, context.own, context.project.name)
    consumed = [context.topic(t).name for t in declared.consumes]
    if context.own.group_id is None:
        former = declared.former_group(settings)
        if adopted := await kafka.adopt_offsets(settings, group, former, consumed):
            log.info("%s takes over %d committed offsets of %s", group, len(adopted), former)
    consumer = kafka.consumer(settings, group_id=group, auto_offset_reset=context.own.offset_reset)
    if job.listener is None:
        consumer.subscribe(consumed)
    else:
        consumer.subscribe(consumed, listener=job.listener)

    def dead_letter(source: dlq.Source, rejection: dlq.RejectionError) -> streams.Produce:
        reason = rejection.rule or rejection.error_class
        DEAD_LETTERS.labels(name, source.topic, rejection.stage, reason).inc()
        key, value, headers = dlq.dead_letter(source, rejection, name)
        return streams.Produce(dead_letters, key, value, None, tuple(headers))

    async with kafka.started(consumer):
        log.info("consuming %s as %s", consumed, group)
        polled = Polled(name, consumer)
        await streams.run(consumer, context.producer, job, dead_letter, context.stop, polled)


class Polled:
    """What a service does after each poll: its liveness, throughput and lag figures."""

    def __init__(self, service: str, consumer: AIOKafkaConsumer) -> None:
        self.service, self.lag = service, _Lag(service, consumer)

    async def __call__(self, batches: streams.Batches) -> None:
        heartbeat(self.service)
        for tp, batch in batches.items():  # per partition: not a lock per record
            if batch:
                CONSUMED.labels(self.service, tp.topic).inc(len(batch))
        await self.lag.measure()


@dataclass
class _Lag:
    """`tideline_consumer_lag` per assigned partition, refreshed at most once a second."""

    service: str
    consumer: AIOKafkaConsumer
    every_s: float = 1.0
    _next: float = 0.0
    _shown: set[tuple[str, int]] = field(default_factory=set)

    async def measure(self) -> None:
        if (now := time.monotonic()) < self._next:
            return
        self._next = now + self.every_s
        shown = set()
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is None:  # nothing fetched from it yet
                continue
            position = await self.consumer.position(tp)
            CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(
                max(0, end - position)
            )
            shown.add((tp.topic, tp.partition))
        for topic, partition in self._shown - shown:  # revoked: no stale figure
            CONSUMER_LAG.remove(self.service, topic, str(partition))
        self._shown = shown


def quiet_gc() -> None:
    """Shorten the garbage collector's pauses, the tail of every latency here.

    A service holds much long-lived state (window rows, dedup ids, library machinery);
    a full collection walks all of it and stalled a stream for 30+ ms. Objects from
    start-up are frozen out of collection, and young ones collected less often.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def setup(service: str, metrics_port: int, native_threads: int) -> asyncio.Event:
    """Configure logs, serve /metrics, limit native thread pools, and return an event that
    SIGTERM/SIGINT set.

    Native threads: six services share the machine's cores, and OpenMP's threads spin
    while they wait. With two per process on two cores, a 1,000-row gradient boosting
    fit took 5.4 s in the demo's loop instead of 1.5 s with one.
    """
    global _native_threads
    _native_threads = native_threads
    threadpoolctl.threadpool_limits(native_threads)
    # One JSON object a line, so a log shipper can index service, level and logger.
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    if metrics_port:
        start_http_server(metrics_port)
    quiet_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def to_thread(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` in a worker thread, under the process's native thread limit.

    OpenMP keeps its thread count per calling thread: the limit `setup` set holds in the
    main thread only, and a fit in a worker thread started two OpenMP threads anyway,
    which on a busy machine made a 1,000-row fit take 16 to 33 s instead of 0.2 s.
    """

    def limited() -> T:
        with threadpoolctl.threadpool_limits(_native_threads):
            return func(*args)

    return await asyncio.to_thread(limited)


def openmp_threads() -> int:
    """The threads an OpenMP pool would start from the calling thread now (0: none loaded)."""
    pools = threadpoolctl.threadpool_info()
    return max((p["num_threads"] for p in pools if p["user_api"] == "openmp"), default=0)


def heartbeat(service: str) -> None:
    LAST_POLL.labels(service).set(time.time())
