"""The relay's ASGI app (``RelayApp``): ``/ws``, the chat page, the dashboard,
``/config.json`` and the health checks.

Start-up builds the shared services, creates this instance's subscription and opens its
streaming pull; any of that failing stops the process (DESIGN §7). Shutdown (uvicorn, on
SIGTERM) first closes every socket with 1012, then runs the lifespan's end here: the pull
is closed and the subscription deleted.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from google.cloud.pubsub_v1 import SubscriberClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from relay.fanout import CHECK_TIMEOUT_S, Fanout
from relay.headers import SecurityHeaders
from relay.session import RelayContext, Session
from relay.settings import RelaySettings
from shared.config import Settings
from shared.openapi import openapi_document
from shared.services import Services
from shared.topology import load_topology

log = logging.getLogger("apex.relay")

STATIC_DIR: Final = Path(__file__).resolve().with_name("static")
# Blocking calls (Firestore, Pub/Sub, Firebase Auth) of every socket share this pool.
IO_THREADS: Final = 64
WS_PATH: Final = "/ws"


@dataclass
class Relay:
    settings: Settings
    relay_settings: RelaySettings
    context: RelayContext
    fanout: Fanout

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state: "ok", or what is wrong with it."""

        def storage() -> None:
            self.context.services.storage.probe(CHECK_TIMEOUT_S)

        async def probe(check: Callable[[], object]) -> str:
            try:
                await asyncio.wait_for(asyncio.to_thread(check), CHECK_TIMEOUT_S + 1)
            except Exception as e:  # noqa: BLE001 - reported as not ready, never hidden
                return f"{type(e).__name__}: {str(e)[:200]}"
            return "ok"

        firestore_state, pubsub_state = await asyncio.gather(
            probe(storage), probe(self.fanout.check)
        )
        return {
            "firestore": firestore_state,
            "pubsub_subscription": pubsub_state,
            "streaming_pull": "ok" if self.fanout.pulling else "not running",
        }


class RelayApp(Starlette):
    """Starlette, but ``/ws`` goes straight to a ``Session`` (any other WebSocket path is
    Starlette's: refused). Through Starlette's middleware and router, each socket would keep
    their coroutine frames and send/receive wrappers for its whole life (~4 KiB measured,
    docs/benchmarks.md) and every frame sent would pass through them."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == WS_PATH:
            relay: Relay = self.state.relay
            await Session(relay.context, receive, send).serve(scope)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    relay_settings: RelaySettings | None = None,
    static_dir: Path = STATIC_DIR,
) -> RelayApp:
    """The app, its settings read from the environment unless given (invalid ones raise)."""
    settings = settings or Settings.from_env(os.environ)
    relay_settings = relay_settings or RelaySettings.from_env(os.environ)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="relay-io")
        )
        built = await asyncio.to_thread(Services.build, settings)
        subscriber = SubscriberClient()
        fanout = Fanout(
            subscriber, settings.project, relay_settings.relay_id, load_topology(), loop
        )
        await asyncio.to_thread(fanout.start)
        context = RelayContext(
            services=built,
            fanout=fanout,
            relay_id=relay_settings.relay_id,
            auth_timeout_s=relay_settings.auth_timeout_s,
        )
        app.state.relay = Relay(settings, relay_settings, context, fanout)
        log.info(
            "relay started",
            extra={"fields": {"relay": relay_settings.relay_id, "project": settings.project}},
        )
        try:
            yield
        finally:
            log.info("relay stopping", extra={"fields": {"relay": relay_settings.relay_id}})
            try:
                await asyncio.to_thread(fanout.stop)
            finally:
                subscriber.close()

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def ready(request: Request) -> Response:
        relay: Relay = request.app.state.relay
        checks = await relay.readiness()
        ok = all(state == "ok" for state in checks.values())
        body = {
            "status": "ready" if ok else "not_ready",
            "relay_id": relay.relay_settings.relay_id,
            "checks": checks,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def config(request: Request) -> Response:
        return JSONResponse(
            {
                "firebase": {
                    "apiKey": relay_settings.firebase_api_key,
                    "authDomain": relay_settings.firebase_auth_domain,
                    "projectId": settings.project,
                },
                "authEmulatorHost": settings.auth_emulator_host,
                "threadsGetUrl": relay_settings.threads_get_url,
                "workspacesUrl": relay_settings.workspaces_url,
                "agentsDataUrl": relay_settings.agents_data_url,
                "agentsOptimizationUrl": relay_settings.agents_optimization_url,
            },
            headers={"Cache-Control": "no-store"},
        )

    openapi = openapi_document()

    async def openapi_json(request: Request) -> Response:
        # The functions' contract, served by the stack (the functions are one URL each).
        return JSONResponse(openapi)

    routes: list[BaseRoute] = [
        Route("/health/live", live),
        Route("/health/ready", ready),
        Route("/config.json", config),
        Route("/openapi.json", openapi_json),
        *page_routes(static_dir),
    ]
    headers = Middleware(
        SecurityHeaders,
        function_urls=(
            relay_settings.threads_get_url,
            relay_settings.workspaces_url,
            relay_settings.agents_data_url,
            relay_settings.agents_optimization_url,
        ),
        auth_emulator_host=settings.auth_emulator_host,
    )
    return RelayApp(routes=routes, lifespan=lifespan, middleware=[headers])


def page_routes(static_dir: Path) -> list[BaseRoute]:
    """``/`` (the chat page), ``/dashboard`` (DESIGN §12) and ``/static/`` (their files). A
    build without a page answers 500 and logs it, rather than standing in for it."""

    def serve(name: str, what: str) -> Callable[[Request], Awaitable[Response]]:
        page = static_dir / name

        async def endpoint(request: Request) -> Response:
            if not page.is_file():
                log.error("a page is missing", extra={"fields": {"page": what, "path": str(page)}})
                return PlainTextResponse(
                    f"the {what} is missing from this build ({page.name} in relay/static/)",
                    status_code=500,
                )
            return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

        return endpoint

    return [
        Route("/", serve("index.html", "chat page")),
        Route("/dashboard", serve("dashboard.html", "dashboard")),
        Mount("/static", StaticFiles(directory=static_dir, check_dir=False), name="static"),
    ]
