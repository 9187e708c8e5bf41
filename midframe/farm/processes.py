"""``midframe farm scheduler`` and ``midframe farm worker``: a Dask scheduler, a Dask worker for midframe.

Both run in the foreground until Ctrl-C or SIGTERM. The scheduler is Dask's own (``dask scheduler``
does the same); the worker is a plain Dask worker in this process, with midframe's plugin and
resources. No nanny process: a service manager (systemd, a Windows service) restarts a worker that
dies, and a segment it was making runs again on another worker.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from midframe.config import Config, EngineConfig, resolve_paths, with_overrides
from midframe.farm.slots import SLOT, slot_devices, worker_resources
from midframe.farm.task import FarmPlugin

DEFAULT_PORT = 8786
RECONNECT_S = 2.0


def _cuda_count() -> int:
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


async def _until_stopped(server: Any, on_stop: Callable[[], Awaitable[Any]]) -> None:
    """Wait for ``server`` to finish; SIGTERM/SIGINT close it cleanly where the loop can catch them."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, lambda: asyncio.ensure_future(on_stop()))
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            pass
    try:
        await server.finished()
    finally:
        # Between two workers (waiting for the scheduler) there is nothing to close: signals act at once.
        for signum in installed:
            loop.remove_signal_handler(signum)


def run_scheduler(*, host: str | None, port: int) -> int:
    from distributed import Scheduler

    async def main() -> None:
        async with Scheduler(host=host, port=port, dashboard=False) as scheduler:
            print(f"midframe farm scheduler listening at {scheduler.address}", flush=True)
            await _until_stopped(scheduler, scheduler.close)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0


def build_plugin(config: Config, *, device: str | None) -> FarmPlugin:
    """The worker's plugin, its engine loaded on every device (errors here stop the worker)."""
    from midframe.engine.ffmpeg import find_ffmpeg
    from midframe.engine.interpolators import create_interpolator

    engine: EngineConfig = with_overrides(config.engine, device=device)
    models_dir = resolve_paths(config).models_dir

    def make(settings: EngineConfig) -> Any:
        return create_interpolator(settings, models_dir=models_dir)

    plugin = FarmPlugin(engine=engine, devices=slot_devices(engine.device, cuda_count=_cuda_count()),
                        path_map=config.farm.path_map, ffmpeg=find_ffmpeg(), make_interpolator=make)
    plugin.warm()
    return plugin


def run_worker(config: Config, *, scheduler: str, device: str | None, nthreads: int | None) -> int:
    """A Dask worker for ``scheduler`` until SIGTERM/SIGINT. A Dask worker ends when its scheduler goes
    away; this one then waits for the scheduler to come back and starts a new one, with the same
    engines already loaded."""
    from distributed import Worker

    from midframe.log import configure_logging

    configure_logging(level=config.logging.level)
    scheduler = with_overrides(config.farm, scheduler=scheduler).scheduler
    plugin = build_plugin(config, device=device)
    resources = worker_resources(plugin.devices, config.farm.resources)
    threads = nthreads or len(plugin.devices)
    name = f"{socket.gethostname()}-{os.getpid()}"

    async def main() -> None:
        stopping = asyncio.Event()
        current: list[Any] = []

        async def stop() -> None:
            stopping.set()
            for worker in current:
                await worker.close()

        while not stopping.is_set():
            # A worker that found it cannot work (no share, no engine) stays out of the scheduling.
            offered = resources if plugin.unfit is None else {**resources, SLOT: 0.0}
            async with Worker(scheduler, nthreads=threads, resources=offered, plugins=(plugin,), name=name,
                              dashboard=False, memory_limit=0) as worker:
                current[:] = [worker]
                logger.info("midframe farm worker {} ({}) working for {}: {} on {}", worker.address, name,
                            scheduler, plugin.engine.name, ", ".join(plugin.devices))
                print(f"midframe farm worker {worker.address} ready", flush=True)
                await _until_stopped(worker, stop)
            if stopping.is_set():
                break
            if plugin.unfit is not None:
                logger.warning("staying connected to {} without slots: {}", scheduler, plugin.unfit)
            else:
                logger.warning("lost the scheduler {}; waiting for it to come back", scheduler)
            await asyncio.sleep(RECONNECT_S)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        plugin.close()
    return 0
