"""`tideline console` in a real headless Chromium, during a demo-like run with a drift: the page
shows the drift, the new version's promotion, accuracy falling and recovering, the dead
letters and the services; its roll back button makes the registry roll back; first paint
and live updates are timed in the browser. Screenshots of each view go to
build/artifacts/console/ (docs/console.md shows them)."""

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as Driver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from tideline import catalog, dlq, kafka, project
from tideline.settings import Settings

import services
from ops import demo, launcher

from .services.running import collect

pytestmark = pytest.mark.integration

ARTIFACTS = Path(os.environ.get("TIDELINE_ARTIFACTS", "build/artifacts")) / "console"
PROJECT = Path("examples/cards/project.yaml")
PLAN = demo.Plan(rate=400, bootstrap=2000, before=2000, after=6000)
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # the machine's closed network refuses its calls
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Driver("/usr/bin/chromedriver"), options=options)
    driver.set_window_size(1440, 1000)
    try:
        yield driver
    finally:
        driver.quit()


def _until(check: Callable[[], Any], what: str, timeout_s: float = 120) -> Any:
    """`check()` once it is truthy. The bound is a guard: each check waits on an outcome."""
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"the page never showed {what}"
        time.sleep(0.1)
    return found


class ConsoleProcess:
    """`tideline console` as a process, on a free port, reading the test's services."""

    def __init__(self, settings: Settings, ports: dict[str, int], log: Path) -> None:
        self.port = launcher.free_port()
        metrics = {n: f"http://127.0.0.1:{p}/metrics" for n, p in ports.items()}
        env = launcher.environment(settings, PROJECT) | {
            "TIDELINE_CONSOLE_METRICS": json.dumps(metrics),
            "TIDELINE_CONSOLE_OPERATOR": "browser-test",
        }
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "console", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}/"

    def answers(self) -> bool:
        assert self.proc.poll() is None, "the console exited"
        try:
            with urllib.request.urlopen(self.url, timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def _first_paint_ms(driver: WebDriver) -> float:
    paints = driver.execute_script(
        "return performance.getEntriesByType('paint').map(e => [e.name, e.startTime])"
    )
    return float(dict(paints)["first-contentful-paint"])


def _state(driver: WebDriver, expr: str) -> Any:
    return driver.execute_script(f"return {expr}")


def _shoot(driver: WebDriver, name: str, selector: str | None = None) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if selector is None:
        height = _state(driver, "document.documentElement.scrollHeight")
        width = _state(driver, "window.innerWidth")
        driver.set_window_size(width, height + 140)
        driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        return
    element = driver.find_element(By.CSS_SELECTOR, selector)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.screenshot(str(ARTIFACTS / f"{name}.png"))


def _texts(driver: WebDriver, selector: str) -> list[str]:
    """The text of each element `selector` finds, read at once: the page redraws lists
    whole, so an element found in one call may be gone by the next."""
    found: list[str] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", selector
    )
    return found


def _click(driver: WebDriver, action: str) -> None:
    """An operator's button, scrolled clear of the sticky header first."""
    button = driver.find_element(By.CSS_SELECTOR, f"#actions button[data-action={action}]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()


def _accuracy(driver: WebDriver, version: int) -> list[float]:
    points = _state(driver, "window.tideline.state.series.cards || []")
    return [
        p["performance"]["accuracy"]
        for p in points
        if p["version"] == version and "accuracy" in p["performance"]
    ]


async def _dead_letter(settings: Settings, marker: str) -> float:
    """A dead letter as a service writes one; the wall clock once the broker has it."""
    source = dlq.Source("somewhere", 0, 1, None, None, marker.encode())
    rejection = dlq.RejectionError("decode", "ValueError", f"what the test sent: {marker}")
    key, value, headers = dlq.dead_letter(source, rejection, "test")
    producer = kafka.producer(settings)
    async with kafka.started(producer):
        await producer.send_and_wait(
            dlq.TOPIC.full_name(settings), value, key=key, headers=list(headers)
        )
    return time.time()


def _watch_for(driver: WebDriver, marker: str) -> None:
    """Record in the page when `marker` first shows in the dead letters."""
    driver.execute_script(
        """
        const marker = arguments[0], box = document.getElementById("dead-letters");
        window.seen = window.seen || {};
        new MutationObserver((_, observer) => {
          if (box.textContent.includes(marker)) { window.seen[marker] = Date.now(); observer.disconnect(); }
        }).observe(box, { childList: true, subtree: true, characterData: true });
        """,
        marker,
    )


def test_the_console_follows_a_drift_a_promotion_and_a_rollback(
    settings: Settings, browser: WebDriver, tmp_path: Path
) -> None:
    asyncio.run(kafka.create_topics(settings))
    definition = project.load(PROJECT)
    # no follow-up runs: v2 stays the champion, and a rollback restores v1
    env = demo.SERVICE_ENV | {
        "TIDELINE_SERVING_HTTP_PORT": "0",
        "TIDELINE_TRAINER_FOLLOW_UPS": "[]",
    }
    with launcher.running(services.NAMES, settings, PROJECT, env, tmp_path / "logs") as running:
        ports = {name: process.metrics_port for name, process in running.items()}
        console = ConsoleProcess(settings, ports, tmp_path / "console.log")
        try:
            _until(console.answers, "the console's page")
            browser.get(console.url)
            empty_paint = _first_paint_ms(browser)
            _until(lambda: _state(browser, "window.tideline.applied") > 0, "a first change")

            report: dict[str, Any] = {}

            def run_demo() -> None:
                quiet = Console(file=io.StringIO())
                report["demo"] = asyncio.run(demo.loop(settings, definition, PLAN, ports, quiet))

            loop = threading.Thread(target=run_demo)
            loop.start()
            # while it runs: the services, then the dead letters ingest refused
            _until(
                lambda: len(browser.find_elements(By.CSS_SELECTOR, "#health .state-healthy")) >= 5,
                "the services healthy",
            )
            _until(
                lambda: len(browser.find_elements(By.CSS_SELECTOR, ".letter")) >= 2, "dead letters"
            )
            _until(
                lambda: _state(browser, "window.tideline.state.health.featurestore.rate") > 0,
                "the feature store's throughput",
            )
            _shoot(browser, "services", "#health")
            loop.join(timeout=600)
            assert "demo" in report, "the demo loop failed: see the services' logs"
            assert report["demo"].promotions == [2]

            # the drift, the new champion, accuracy falling and recovering
            _until(lambda: _texts(browser, "#timeline li[data-kind=drift]"), "the drift")
            promoted = _until(
                lambda: _texts(browser, "#timeline li[data-action=promoted]"),
                "the promotions",
            )
            assert any("v2 promoted" in text for text in promoted)
            _until(lambda: browser.find_element(By.ID, "champion").text == "v2", "v2 champion")
            _until(lambda: max(_accuracy(browser, 2), default=0) > 0.85, "v2 serving well")
            first = _accuracy(browser, 1)
            assert max(first) > 0.85  # before the drift
            assert min(first[first.index(max(first)) :]) < 0.75  # then it fell
            traces = _state(browser, "document.getElementById('performance-plot').data.length")
            assert traces >= 3  # v1, v2 and the floor
            assert _state(browser, "document.getElementById('drift-plot').data.length") > 5
            assert _state(browser, "document.getElementById('histogram-plot').data.length") == 2
            for name, selector in (
                ("model", "#model-card"),
                ("performance", "#performance-plot"),
                ("event-time", "#event-time-plot"),
                ("labels", "#labels-plot"),
                ("drift", "#drift-plot"),
                ("histogram", "#histogram-plot"),
                ("timeline", "#timeline"),
                ("versions", "#versions"),
                ("dead-letters", "#dead-letters"),
            ):
                _shoot(browser, name, selector)

            # live: a record on Kafka is on the page within 2 s
            delays: list[float] = []
            for i in range(3):
                marker = f"live-{i}-{time.time_ns()}"
                _watch_for(browser, marker)
                sent = asyncio.run(_dead_letter(settings, marker))
                seen = _until(partial(_state, browser, f"window.seen[{marker!r}]"), marker, 30)
                delays.append(seen / 1000 - sent)
            assert max(delays) < 2.0, delays

            # roll back from the page: the registry's record, and the page shows it
            _click(browser, "rollback")
            _until(
                lambda: "rolled_back" in browser.find_element(By.ID, "action-result").text,
                "the registry's answer",
            )
            _until(
                lambda: _texts(browser, "#timeline li[data-action=rolled_back]"),
                "the rollback in the timeline",
            )
            _until(lambda: browser.find_element(By.ID, "champion").text == "v1", "v1 champion")
            updates = catalog.topic("models.updated").bind(settings)
            records = [
                updates.decode(m.value) for m in asyncio.run(collect(settings, "models.updated", 1))
            ]
            (rolled,) = [u for u in records if u["action"] == "rolled_back"]
            assert rolled["decided_by"].startswith("console:")
            _shoot(browser, "after-rollback", "#timeline")

            # manual approval: paused, a run the gate passes is held, not promoted
            _click(browser, "pause")
            _until(lambda: "paused" in browser.find_element(By.ID, "action-result").text, "paused")
            _until(lambda: "paused" in browser.find_element(By.ID, "promotion").text, "the pause")
            _click(browser, "train")
            held = _until(
                lambda: _texts(browser, "#timeline li[data-action=held]"),
                "the gate holding the new run",
                timeout_s=300,
            )
            assert "promote it by hand" in held[0]
            assert browser.find_element(By.ID, "champion").text == "v1"
            challenger = browser.find_element(By.ID, "challenger").text.split()[0]
            assert any(f"{challenger} held" in text for text in held)
            _click(browser, "resume")
            _until(lambda: "automatic" in browser.find_element(By.ID, "promotion").text, "resumed")

            # the time range: the plots show the last 15 minutes
            browser.find_element(By.CSS_SELECTOR, "#range button[data-minutes='15']").click()
            _until(
                lambda: _state(
                    browser, "document.getElementById('performance-plot').layout.xaxis.range"
                ),
                "a 15-minute range",
            )

            # a reload paints at once, however much history there is
            browser.get(console.url)
            full_paint = _first_paint_ms(browser)
            _until(lambda: _state(browser, "window.tideline.drawnAt") > 0, "the snapshot drawn")
            assert empty_paint < 1000, empty_paint
            assert full_paint < 1000, full_paint
            _layouts(browser)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "timings.json").write_text(
                json.dumps(
                    {
                        "first_paint_ms": {"empty": empty_paint, "after the run": full_paint},
                        "live_update_s": delays,
                        "at": datetime.now(UTC).isoformat(),
                    },
                    indent=1,
                )
            )
        finally:
            console.stop()


def _layouts(browser: WebDriver) -> None:
    """A laptop's screen, a wide monitor, and dark mode: nothing overflows, all readable."""
    for name, width in (("laptop", 1366), ("wide", 2560)):
        browser.set_window_size(width, 900)
        # the plots follow a resize a moment later (plotly debounces it)
        _until(lambda: _state(browser, OVERFLOW) <= 0, f"the page fitting a {name} screen", 10)
        _shoot(browser, f"page-{name}")
    columns = _state(
        browser,
        "new Set([...document.querySelectorAll('main > .card')].map(c => c.offsetLeft)).size",
    )
    assert columns >= 3  # a wide monitor shows cards side by side
    browser.set_window_size(1440, 900)
    browser.find_element(By.ID, "theme").click()
    background = _state(browser, "getComputedStyle(document.body).backgroundColor")
    light = _state(browser, "document.documentElement.dataset.theme")
    _shoot(browser, f"page-{light}")
    browser.find_element(By.ID, "theme").click()
    assert background != _state(browser, "getComputedStyle(document.body).backgroundColor")


def test_a_console_with_no_topics_says_so(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "console"],
        env=launcher.environment(settings, PROJECT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "missing topics" in done.stdout
    assert "tideline topics create" in done.stdout
