"""The shipped Prometheus configuration, alerts and Grafana dashboard, checked by the real
tools: promtool, and a real Prometheus scraping all the services of a test's own."""

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tideline import kafka
from tideline.settings import Settings

import services
from ops import launcher, monitoring

from .services.running import Service

pytestmark = pytest.mark.integration

WATCHED = services.NAMES + services.OPTIONAL


def _promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_config_and_rules_and_the_rules_pass_their_tests() -> None:
    folder = monitoring.CONFIG.parent
    assert "SUCCESS" in _promtool("check", "config", monitoring.CONFIG.name, cwd=folder)
    assert "7 rules found" in _promtool("check", "rules", monitoring.RULES.name, cwd=folder)
    assert "SUCCESS" in _promtool("test", "rules", monitoring.RULE_TESTS.name, cwd=folder)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    found = _get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert found["status"] == "success", (expr, found)
    result: list[dict[str, Any]] = found["data"]["result"]
    return result


@pytest.fixture
def prometheus(tmp_path: Path, settings: Settings) -> Iterator[tuple[str, dict[str, Service]]]:
    """Every service on a free port, and a real Prometheus scraping them each second."""
    asyncio.run(kafka.create_topics(settings))
    running = {name: Service(name, settings) for name in WATCHED}
    for svc in running.values():
        svc.start()
    port = launcher.free_port()
    targets = {name: f"127.0.0.1:{svc.metrics_port}" for name, svc in running.items()}
    (tmp_path / "prometheus.yml").write_text(monitoring.config(targets, interval="1s"))
    shutil.copy(monitoring.RULES, tmp_path / "rules.yml")
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        yield f"http://127.0.0.1:{port}", running
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        for svc in running.values():
            svc.stop()


def _until(check: Any, what: str, attempts: int = 240) -> Any:
    """`check()` once it is truthy; one try every quarter second, 60 s at most."""
    for _ in range(attempts):
        try:
            if found := check():
                return found
        except OSError:
            pass  # not listening yet
        time.sleep(0.25)
    raise AssertionError(f"never: {what}")


def test_a_real_prometheus_scrapes_every_service_and_evaluates_every_rule_and_panel(
    prometheus: tuple[str, dict[str, Service]],
) -> None:
    base, running = prometheus
    _until(lambda: urllib.request.urlopen(f"{base}/-/ready").status == 200, "Prometheus ready")
    for name in WATCHED:
        _until(lambda n=name: _query(base, f'up{{job="tideline-{n}"}} == 1'), f"{name} up")
        # a series of the service's own, scraped from its endpoint
        series = f'process_start_time_seconds{{job="tideline-{name}"}}'
        (found,) = _query(base, series)
        assert float(found["value"][1]) > 0
    polling = [n for n in WATCHED if n != "serving"]  # serving polls once it has a champion
    for name in polling:
        _until(
            lambda n=name: _query(base, f'tideline_last_poll_timestamp_seconds{{service="{n}"}}'),
            f"{name} polling",
        )

    # every rule evaluates without error
    def evaluated() -> list[dict[str, Any]]:
        groups = _get(f"{base}/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if all(r["health"] != "unknown" for r in rules) else []

    rules = _until(evaluated, "every rule evaluated")
    assert len(rules) == 7
    assert [(r["name"], r["lastError"]) for r in rules if r["health"] != "ok"] == []

    # every dashboard query and rule runs, and names only metrics some service exports
    exported = "\n".join(svc.metrics() for svc in running.values())
    for expr in _dashboard_queries() + [r["query"] for r in rules]:
        _query(base, expr)
        for metric in re.findall(r"\b(tideline_[a-z_]+)", expr):
            family = re.sub(r"_(bucket|sum|count)$", "", metric)  # a histogram's series
            assert f"# TYPE {family} " in exported, f"no service exports {metric}"


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(monitoring.DASHBOARD.read_text())
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    found += [a["expr"] for a in dashboard["annotations"]["list"]]
    substitutions = {"$model": "cards", "$__rate_interval": "1m", "$__range": "1h"}
    rendered = []
    for expr in found:
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        rendered.append(expr)
    assert len(rendered) > 15
    return rendered
