"""``python -m relay``: the relay under uvicorn (the Docker image's command; ``make dev``).

Listens on ``--host`` (default 127.0.0.1; the image passes 0.0.0.0) and ``--port`` (default
``$PORT``, which Cloud Run sets, else 8000). Settings come from the environment and are
checked before anything starts (docs/relay.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final

import uvicorn
from starlette.applications import Starlette

from relay.app import create_app
from relay.settings import RelaySettings
from shared import logging as apex_logging
from shared.config import ConfigError, Settings
from shared.models.frames import MAX_FRAME_BYTES

# The WebSocket implementation under uvicorn, chosen by measurement (docs/relay.md).
WS_IMPL: Final = "websockets-sansio"
# Per-message deflate off: in that measurement it cost ~60% more server CPU per pushed
# frame and 2.4x the memory per open socket, for frames of a few KiB.
WS_DEFLATE: Final = False
# Keep-alive pings so idle sockets survive proxies and dead peers are noticed.
WS_PING_INTERVAL_S: Final = 20.0
WS_PING_TIMEOUT_S: Final = 20.0
# Cloud Run gives 10 s after SIGTERM: sockets get 1012 at once, this long for their tasks,
# then the subscription is deleted.
GRACEFUL_SHUTDOWN_S: Final = 5


def serve(app: Starlette, host: str, port: int) -> None:
    """Run ``app`` with the relay's server settings (the benchmarks use this too, so they
    measure what production runs)."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        ws=WS_IMPL,
        ws_max_size=MAX_FRAME_BYTES,
        ws_ping_interval=WS_PING_INTERVAL_S,
        ws_ping_timeout=WS_PING_TIMEOUT_S,
        ws_per_message_deflate=WS_DEFLATE,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        lifespan="on",
        log_config=None,
        server_header=False,
        # Cloud Run's front end sets X-Forwarded-For/Proto.
        proxy_headers=True,
        forwarded_allow_ips="*",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relay", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        relay_settings = RelaySettings.from_env(os.environ)
    except ConfigError as e:
        print(f"relay: {e}", file=sys.stderr, flush=True)
        return 2
    apex_logging.configure(settings.project)
    serve(create_app(settings, relay_settings), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
