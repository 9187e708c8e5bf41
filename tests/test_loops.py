"""The long-lived loops: the thread base (one iteration at a time, a raising one logged and survived,
``stop`` cutting the wait short), the queue-fed threads, and the housekeeping loop as the one owner of
config reloads and vets (driven here with ``now=``; other threads only read the snapshot)."""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import pytest
from loguru import logger

from midframe.config import Config, Paths, config_from_mapping
from midframe.daemon.jobs.events import EventLog, JobEvents, Notifier
from midframe.daemon.jobs.pauses import SETTINGS
from midframe.daemon.jobs.services import JobServices
from midframe.daemon.jobs.worker import Worker
from midframe.daemon.lifecycle import NoLifecycle
from midframe.daemon.settings import ConfigSource
from midframe.daemon.startup import Housekeeping
from midframe.daemon.store.memory import MemoryJobStore
from midframe.loop_thread import LoopThread, QueueThread
from midframe.signals import SignalFlags


@pytest.fixture
def said():
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message).rstrip("\n")), level="INFO", format="{message}")
    yield lines
    logger.remove(sink)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --- the thread base ------------------------------------------------------------------------------

def test_a_raising_iteration_is_logged_and_the_loop_goes_on(said):
    rounds: list[float] = []

    def iterate(now: float) -> None:
        rounds.append(now)
        if len(rounds) == 1:
            raise OSError("the file vanished between two calls")

    loop = LoopThread(name="test-loop", period_s=0.01, iterate=iterate)
    loop.start()
    try:
        wait_until(lambda: len(rounds) >= 3)
        assert loop.is_alive()
    finally:
        loop.stop()
        loop.join(5)
    assert not loop.is_alive()
    assert [line for line in said if "test-loop: an iteration failed; the loop goes on" in line]
    assert any("the file vanished between two calls" in line for line in said)  # with its traceback


def test_stop_cuts_the_wait_short_and_the_hooks_run_on_the_loops_thread():
    seen: list[tuple[str, str]] = []

    class Loop(LoopThread):
        def on_thread_start(self) -> None:
            seen.append(("start", threading.current_thread().name))

        def iterate(self, now: float) -> None:
            seen.append(("iterate", threading.current_thread().name))

        def on_thread_stop(self) -> None:
            seen.append(("stop", threading.current_thread().name))

    loop = Loop(name="test-hooks", period_s=3600)
    loop.start()
    wait_until(lambda: len(seen) >= 2)
    started = time.monotonic()
    loop.stop()
    loop.join(5)
    assert time.monotonic() - started < 2 and not loop.is_alive()   # not an hour
    assert seen == [("start", "test-hooks"), ("iterate", "test-hooks"), ("stop", "test-hooks")]


def test_one_iteration_at_a_time_with_the_time_a_test_chooses():
    rounds: list[float] = []
    loop = LoopThread(name="test-now", period_s=1, iterate=rounds.append)
    assert loop.run_once(now=10.0) and loop.run_once(now=12.5)
    assert rounds == [10.0, 12.5] and not loop.is_alive()            # no thread was started
    failing = LoopThread(name="test-now", period_s=1, iterate=lambda now: 1 / 0)
    assert failing.run_once(now=0.0) is False


def test_a_queue_thread_handles_what_was_queued_before_it_ends(said):
    items: queue.Queue[int | None] = queue.Queue()
    handled: list[int] = []

    def handle(item: int) -> None:
        if item == 2:
            raise ValueError("a receiver that fails once")
        handled.append(item)

    for item in (1, 2, 3, None, 4):
        items.put(item)
    thread = QueueThread(items, handle, name="test-queue")
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and handled == [1, 3]                # 4 came after the end
    assert any("test-queue: an iteration failed" in line for line in said)


# --- the housekeeping loop: the one owner of config reloads ---------------------------------------

class Served:
    """What the housekeeping loop looks after, without the daemon's threads: requests kept as the
    Daemon keeps them, a real ConfigSource, a lifecycle that records what it is told."""

    def __init__(self, settings: ConfigSource) -> None:
        self.settings = settings
        self.notifier = Notifier(EventLog())
        self.events = JobEvents()
        self.told: list[str] = []
        self.lifecycle = self.Told(self.told)
        self.worker = None
        self.store_looks = 0
        self.store_fails = 0
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wakeup = threading.Event()

    class Told(NoLifecycle):
        def __init__(self, told: list[str]) -> None:
            self._told = told

        def reloading(self) -> None:
            self._told.append("reloading")

        def ready(self) -> None:
            self._told.append("ready")

        def heartbeat(self) -> None:
            self._told.append("heartbeat")

        def stopping(self) -> None:
            self._told.append("stopping")

    def request_stop(self) -> None:
        self._stop.set()
        self._wakeup.set()

    def request_reload(self) -> None:
        self._reload.set()
        self._wakeup.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        self._wakeup.wait(timeout)
        self._wakeup.clear()
        return self._stop.is_set()

    def take_reload_request(self) -> bool:
        requested = self._reload.is_set()
        self._reload.clear()
        return requested

    def reload_config(self) -> Config:
        return self.settings.reload()

    def check_store(self) -> None:
        self.store_looks += 1
        if self.store_fails:
            self.store_fails -= 1
            raise OSError("the job database's folder is gone for a moment")

    def status(self) -> dict:
        return {"state": "idle", "current": None, "queued": 0, "done": 0, "failed": 0}

    def status_line(self) -> str:
        return "idle; 0 queued"


class CountingVet:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.calls: list[tuple[str, Config]] = []

    def __call__(self, config: Config) -> list[str]:
        self.calls.append((threading.current_thread().name, config))
        return list(self.problems)


def edit(path: Path, text: str, stamp: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(stamp, stamp))  # a different mtime, even on coarse clocks


def test_a_config_edit_is_reloaded_by_the_housekeeping_iteration_alone(tmp_path, said):
    path = tmp_path / "config.yaml"
    path.write_text("engine: {name: blend}\n", encoding="utf-8")
    vet = CountingVet()
    clock = [0.0]
    source = ConfigSource(path, config_from_mapping({"engine": {"name": "blend"}}), vet=vet, clock=lambda: clock[0])
    served = Served(source)
    loop = Housekeeping(served, clock=lambda: clock[0])
    loop.run_once(now=0.0)
    assert vet.calls == [] and "heartbeat" in served.told            # nothing changed: nothing vetted

    edit(path, "engine: {name: dis, factor: 3}\n", 1)
    seen: list[Config] = []

    def reader() -> None:  # the worker between jobs, an HTTP thread, the watcher, the farm's monitor
        for _ in range(200):
            seen.append(source.snapshot())
            source.problems(source.snapshot())

    readers = [threading.Thread(target=reader, name=f"reader-{n}") for n in range(4)]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    assert vet.calls == [] and {config.engine.name for config in seen} == {"blend"}   # no reload, no vet
    assert not [line for line in said if "config reloaded" in line]

    clock[0] = 0.25
    loop.run_once(now=0.25)
    assert source.snapshot().engine.name == "dis" and source.snapshot().engine.factor == 3
    assert [config.engine.name for _, config in vet.calls] == ["dis"]   # vetted once, by the loop
    assert said[-1] == (f"config reloaded from {path}: engine changed: engine.name blend -> dis, "
                        "engine.factor 2 -> 3 (from the next job on)")
    loop.run_once(now=0.5)
    assert len(vet.calls) == 1                                        # read once per change


def test_sighup_reloads_at_the_next_iteration_and_says_so(tmp_path, said):
    path = tmp_path / "config.yaml"
    path.write_text("engine: {factor: 4}\n", encoding="utf-8")
    source = ConfigSource(path, config_from_mapping({"engine": {"factor": 4}}))
    served = Served(source)
    flags = SignalFlags()
    loop = Housekeeping(served, flags=flags)
    flags.reload = True                                               # what the SIGHUP handler does
    loop.run_once(now=0.0)
    assert served.told[:2] == ["reloading", "ready"]
    assert f"config reloaded from {path}: nothing changed" in said
    flags.stop = True
    loop.run_once(now=1.0)
    assert served.stop_requested and not loop.should_keep_running()


def test_the_config_in_force_is_vetted_again_only_while_the_daemon_is_paused_for_it(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("engine: {name: blend}\n", encoding="utf-8")
    vet = CountingVet()
    works = [True]
    changes: list[list[str]] = []
    source = ConfigSource(path, config_from_mapping({"engine": {"name": "blend"}}), vet=vet, retry_s=15.0,
                          in_force_works=lambda: works[0], on_change=lambda: changes.append(source.problems()),
                          clock=lambda: 0.0)
    for now in (0.0, 20.0, 40.0):
        source.refresh(now)
    assert vet.calls == []                                            # it works: nothing to look into
    works[0] = False                                                  # a job found a setting it cannot honour
    vet.problems = ["engine.device: cuda:1: not available"]
    source.refresh(41.0)
    assert len(vet.calls) == 1 and changes == [vet.problems]          # at once, and news for the pauses
    source.refresh(50.0)
    assert len(vet.calls) == 1                                        # then every retry_s
    source.refresh(56.0)
    assert len(vet.calls) == 2 and len(changes) == 1                  # the same verdict is no news
    asker = threading.Thread(target=source.look_again, name="http-resume")   # a person resumed
    asker.start()
    asker.join()
    assert len(vet.calls) == 2                                        # asking is not vetting
    vet.problems = []
    source.refresh(57.0)
    assert len(vet.calls) == 3 and changes[-1] == [] and source.problems() == []
    assert {name for name, _ in vet.calls} == {"MainThread"}          # only the owner's thread vets


def test_the_settings_pause_lifts_when_the_housekeeping_loop_finds_the_fix(tmp_path):
    """The daemon's wiring in small: the worker reads the snapshot and the verdict, the housekeeping
    loop vets. A person resuming from another thread reads the verdict; only the loop runs the check."""
    paths = Paths(inbox=tmp_path / "inbox", outbox=tmp_path / "outbox", state_dir=tmp_path / "state",
                  done_dir=tmp_path / "done", failed_dir=tmp_path / "failed", log_dir=tmp_path / "logs",
                  cache_dir=tmp_path / "cache")
    path = tmp_path / "config.yaml"
    path.write_text("engine: {name: rife}\n", encoding="utf-8")
    vet = CountingVet()
    vet.problems = ["engine.name: the engine needs its model weights; run `midframe models fetch`"]
    clock = [0.0]
    workers: list[Worker] = []
    source = ConfigSource(path, config_from_mapping({"engine": {"name": "rife"}}), vet=vet, retry_s=15.0,
                          in_force_works=lambda: workers[0].pauses.get(SETTINGS) is None,
                          on_change=lambda: workers[0].recheck_pauses() if workers else None,
                          clock=lambda: clock[0])
    events = EventLog()
    job_events = JobEvents()
    job_events.subscribe(Notifier(events))
    worker = Worker(JobServices(MemoryJobStore(), paths, config=source.snapshot, events=job_events,
                                check_settings=source.problems, clock=lambda: clock[0]))
    workers.append(worker)
    assert source.vet() == vet.problems                               # start-up, before the threads
    worker.check_settings(source.snapshot())
    assert worker.pause_reason == vet.problems[0] and len(vet.calls) == 1

    resumer = threading.Thread(target=worker.resume, name="http-resume")
    resumer.start()
    resumer.join()
    worker.run_once()
    assert len(vet.calls) == 1 and worker.pause_reason == vet.problems[0]  # read, never vetted again

    vet.problems = []                                                 # `midframe models fetch`
    served = Served(source)
    loop = Housekeeping(served, clock=lambda: clock[0])
    clock[0] = 5.0
    loop.run_once(now=5.0)
    assert len(vet.calls) == 1 and worker.pause_reason is not None   # not due yet
    clock[0] = 16.0
    loop.run_once(now=16.0)
    assert worker.pause_reason is None and [name for name, _ in vet.calls] == ["MainThread", "MainThread"]
    assert [event["kind"] for event in events.since(0)["events"]] == ["paused", "resumed"]


def test_the_housekeeping_thread_survives_a_raising_iteration_and_says_stopping(tmp_path, said):
    served = Served(ConfigSource(None, Config()))
    served.store_fails = 1
    loop = Housekeeping(served, heartbeat_s=0.01, tick_s=0.01)
    loop.start()
    try:
        wait_until(lambda: served.store_looks >= 3)
        assert loop.is_alive()
    finally:
        served.request_stop()
        loop.join(5)
    assert not loop.is_alive() and served.told[-1] == "stopping"
    assert any("midframe-daemon-loop: an iteration failed; the loop goes on" in line for line in said)
    assert "stopping after the current batch" in said
