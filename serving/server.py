"""``seqapps serve``: TF Serving's REST and gRPC APIs over a ``saved_models/`` base directory.

One asyncio event loop runs both front ends (``serving/rest.py`` on aiohttp,
``serving/grpc_api.py`` on grpc.aio); signatures run in the ``Dispatcher``'s threads
(``serving/batching.py``); ``ModelManager`` (``serving/models.py``) loads and swaps versions in
its own thread. SIGTERM or SIGINT stops taking new connections, lets running requests finish
(up to ``shutdown_grace`` seconds) and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from serving import grpc_api, rest
from serving.batching import BatchingSettings, Dispatcher
from serving.command import DEFAULT_MAX_REQUEST_BYTES
from serving.models import ModelManager


@dataclass
class ServerSettings:
    base: Path
    host: str = "127.0.0.1"
    port: int = 8501  # REST; 0 picks a free port
    grpc_port: int = 8500  # 0 picks a free port
    poll_seconds: float = 1.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_concurrent_requests: int = 2
    max_queued_requests: int = 256
    batching: BatchingSettings | None = None
    shutdown_grace: float = 10.0


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ModelServer:
    """Both front ends and the models; ``start`` and ``stop`` run in the event loop."""

    def __init__(self, settings: ServerSettings, log: Callable[[str], None] = print):
        self.settings, self.log = settings, log
        self.manager = ModelManager(settings.base, settings.poll_seconds, log=log)
        self.dispatcher = Dispatcher(
            settings.max_concurrent_requests, settings.max_queued_requests, settings.batching
        )
        self.rest_port = self.grpc_port = None
        self._runner: web.AppRunner | None = None
        self._grpc: object | None = None

    async def start(self) -> None:
        settings = self.settings
        await asyncio.to_thread(self.manager.start)  # loads and warms up every model
        app = rest.create_app(
            self.manager, self.dispatcher, settings.max_request_bytes, log=self.log
        )
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=settings.shutdown_grace
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.host, settings.port)
        await site.start()
        self.rest_port = self._runner.addresses[0][1]
        self._grpc = grpc_api.create_server(
            self.manager, self.dispatcher, settings.max_request_bytes
        )
        self.grpc_port = self._grpc.add_insecure_port(_address(settings.host, settings.grpc_port))
        await self._grpc.start()
        served = ", ".join(self.manager.available()) or "nothing yet"
        self.log(
            f"serving {served} from {settings.base}\n"
            f"REST on http://{_address(settings.host, self.rest_port)}/v1/models/NAME, "
            f"gRPC on {_address(settings.host, self.grpc_port)}"
        )

    async def stop(self) -> None:
        grace = self.settings.shutdown_grace
        if self._grpc is not None:
            await self._grpc.stop(grace)
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.to_thread(self.manager.stop)
        await asyncio.to_thread(self.dispatcher.shutdown)


def serve(settings: ServerSettings, log: Callable[[str], None] = print) -> int:
    """Runs until SIGTERM or SIGINT; returns the exit status (0 after a clean stop)."""

    async def main() -> int:
        server = ModelServer(settings, log)
        stopping = asyncio.Event()
        received = []
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(
                signal_number, lambda s=signal_number: (received.append(s), stopping.set())
            )
        starting = asyncio.ensure_future(server.start())
        await asyncio.wait(
            [starting, asyncio.ensure_future(stopping.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if starting.done():
            starting.result()  # raises what failed
        if not stopping.is_set():
            await stopping.wait()
        name = signal.Signals(received[0]).name if received else "stop"
        log(f"{name}: stopping (running requests finish first)")
        if not starting.done():
            starting.cancel()
        await server.stop()
        log(f"stopped after {server.dispatcher.calls} model calls")
        return 0

    return asyncio.run(main())


class BackgroundServer:
    """A ``ModelServer`` in its own thread and event loop: for tests, benchmarks and programs
    that serve while they do something else. ``with BackgroundServer(settings) as server:``
    starts it (models loaded) and stops it cleanly."""

    def __init__(self, settings: ServerSettings, log: Callable[[str], None] = lambda line: None):
        self.server = ModelServer(settings, log)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="model-server", daemon=True
        )

    def __enter__(self) -> ModelServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result()
        return self.server

    def __exit__(self, *exc_info) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
