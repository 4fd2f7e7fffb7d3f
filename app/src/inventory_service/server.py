"""uvicorn, with a drain step in front of its graceful shutdown.

On SIGTERM (or SIGINT) the instance first marks itself draining, so readiness answers 503 at once,
and keeps serving for DRAIN_DELAY seconds so that the balancer's health checks see it and stop
sending new requests. Then uvicorn's own shutdown runs: it stops accepting connections, closes idle
keep-alive connections, lets the requests in flight finish (up to DRAIN_TIMEOUT seconds, after
which they are cancelled), runs the application's shutdown, and the process exits. A second signal
during the delay skips the rest of it.
"""

from __future__ import annotations

import logging
import time
from types import FrameType

import uvicorn

from .runtime import Lifecycle

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_delay: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_delay = drain_delay
        self._pending_signal: int | None = None
        self._drain_ends_at = 0.0
        self._drain_announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs in the signal handler: set flags only, log from the main loop.
        self.lifecycle.begin_drain()
        if self._pending_signal is None and self.drain_delay > 0:
            self._pending_signal = sig
            self._drain_ends_at = time.monotonic() + self.drain_delay
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.lifecycle.draining and not self._drain_announced:
            self._drain_announced = True
            log.info("draining: readiness is 503; serving %.1fs more, then finishing requests in flight "
                     "(at most %.1fs)", self.drain_delay, self.config.timeout_graceful_shutdown or 0)
        if self._pending_signal is not None and not self.should_exit and time.monotonic() >= self._drain_ends_at:
            super().handle_exit(self._pending_signal, None)
        return await super().on_tick(counter)
