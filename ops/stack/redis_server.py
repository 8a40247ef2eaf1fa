"""A real redis-server (Debian's package) for the online store."""

import shutil
from collections.abc import Sequence

import redis
from tideline.errors import StackError
from tideline.settings import Settings

from ops.stack.process import ManagedProcess, port_open, wait_until


class RedisServer:
    """`options` adds redis-server arguments (users, TLS); `settings.redis_url` must then
    name a user that may PING, which is how the server is seen to answer."""

    def __init__(self, settings: Settings, options: Sequence[str] = ()) -> None:
        self.settings, self.options = settings, options
        self.host, self.port = settings.redis_host_port
        self.bind = "127.0.0.1" if self.host == "localhost" else self.host
        self.data = settings.home / "redis-data"
        self.process = ManagedProcess(
            name="redis",
            run_dir=settings.home / "run",
            log=settings.home / "logs" / "redis.log",
            marker="redis-server",
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is not installed: apt-get install -y redis-server")
        self.data.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--bind",
            self.bind,
            "--port",
            str(self.port),
            "--dir",
            str(self.data),
            "--logfile",
            str(self.process.log),
            "--daemonize",
            "no",
            # Every write in the append-only file before its reply: a killed redis-server
            # (not the machine) comes back with all of it. The file is fsynced each
            # second; what a power cut loses, the feature store rebuilds (its marks).
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            *self.options,
        ]
        child = self.process.start(argv, cwd=self.data)
        wait_until(self.healthy, self.process, timeout=20, child=child)

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    def ports_taken(self) -> list[int]:
        return [p for p in self.ports if port_open(self.host, p)]

    def healthy(self) -> bool:
        client = redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=1, **self.settings.redis_credentials
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
