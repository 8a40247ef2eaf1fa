"""The console's HTTP side: the page, its live feed (server-sent events) and the operator's
orders, each sent as the `registry.commands` or `training.requests` record the CLI sends.

Everything the page loads comes from here: its own files and plotly.js from the
installed `plotly` package; nothing is fetched from a CDN.
"""

import asyncio
import getpass
import importlib.resources
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from tideline import catalog, kafka
from tideline.errors import TidelineError
from tideline.registry import TransitionError
from tideline.settings import Settings

from ops import control
from ops.console.feed import TOPICS, Feed
from ops.console.settings import ConsoleSettings

STATIC = importlib.resources.files("ops.console") / "static"
PLOTLY = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"
KEEPALIVE_S = 15.0
CACHED = {"Cache-Control": "public, max-age=86400"}


class Order(BaseModel):
    action: Literal["promote", "rollback", "archive", "pause", "resume", "train"]
    model: str
    version: int | None = Field(default=None, description="promote and archive need one")
    reason: str | None = None


class Answer(BaseModel):
    action: str
    updates: list[str] = Field(description="What the registry did, one line each")
    request_id: str | None = None


def app(settings: Settings, own: ConsoleSettings) -> FastAPI:
    feed = Feed(settings, own)
    operator = f"console:{own.operator or getpass.getuser()}"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reading = asyncio.create_task(feed.run())
        try:
            yield
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    api = FastAPI(title="Tideline console", lifespan=lifespan)
    api.state.feed = feed

    @api.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        html = (STATIC / "index.html").read_text()
        return HTMLResponse(html.replace("{{prefix}}", settings.topic_prefix))

    @api.get("/static/{name}")
    async def static(name: str) -> Response:
        if name == "plotly.min.js":
            return FileResponse(str(PLOTLY), media_type="text/javascript", headers=CACHED)
        found = STATIC / name
        if "/" in name or not found.is_file():
            raise HTTPException(404)
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return Response(found.read_bytes(), media_type=kind)

    @api.get("/api/stream")
    async def stream(request: Request) -> StreamingResponse:
        """Everything so far, then each change, as server-sent events."""
        try:
            await asyncio.wait_for(feed.caught_up.wait(), timeout=60)
        except TimeoutError:
            raise HTTPException(503, "still reading the topics' history") from None

        async def events() -> AsyncIterator[str]:
            first, queue = feed.open_page()
            try:
                yield f"data: {first}\n\n"
                while queue in feed.pages or not queue.empty():
                    try:
                        message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": keepalive\n\n"
                        continue
                    if message is None:  # the feed starts again: so does the page
                        return
                    yield f"data: {message}\n\n"
            finally:
                feed.close_page(queue)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @api.post("/api/actions", responses={409: {}, 504: {}})
    async def act(order: Order) -> Answer:
        """Carry out an operator's order; the registry's (or trainer's) answer follows."""
        try:
            if order.action == "train":
                reason = order.reason or "requested from the console"
                request = await control.request_training(
                    settings, control.TrainingOrder(order.model, operator, reason)
                )
                return Answer(action="train", updates=[], request_id=request["request_id"])
            updates = await control.command(
                settings, order.action, order.model, order.version, operator, order.reason, 30
            )
        except TransitionError as exc:
            raise HTTPException(409, str(exc)) from exc
        except control.NoAnswerError as exc:
            raise HTTPException(504, str(exc)) from exc
        except TidelineError as exc:
            raise HTTPException(409, str(exc)) from exc
        lines = [
            f"{u['model']['model_name']} v{u['model']['version']}: {u['action']} -> {u['model']['state']}"
            for u in updates
        ]
        return Answer(action=order.action, updates=lines)

    return api


async def check(settings: Settings) -> None:
    """Fail at once, and say why, where the console could show nothing: no broker, no topics."""
    await kafka.require(settings, *map(catalog.topic, TOPICS))


def serve(settings: Settings, own: ConsoleSettings) -> None:
    """`tideline console`: until interrupted."""
    # a page's live stream never ends by itself: on SIGTERM, wait for it only briefly
    config = uvicorn.Config(
        app(settings, own),
        host=own.host,
        port=own.port,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run()
