"""The composition root: builds the store, watcher, worker, job events and their subscribers, the
render farm's link and the control API, and wires them together. What the control API asks is
:mod:`midframe.daemon.control_target`'s, what becomes of an arrived file :mod:`midframe.daemon.arrivals`',
the farm's glue :mod:`midframe.daemon.farm_link`'s.

Threads: the watchdog observer and the settle loop (watcher), the worker (one job at a time), the
control API server, and the desktop notifier's sender. Starting it, the housekeeping loop (heartbeats,
reloads, signals) and stopping it are ``midframe.daemon.startup``'s, for every entry point alike. The
config (``settings``) is read by every thread as a snapshot and reloaded and vetted by the housekeeping
loop alone (and once here at start-up, before the threads).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.api.control import ControlServer, new_token, remove_control_file, write_control_file
from midframe.config import (
    Config,
    EngineConfig,
    NotificationsConfig,
    default_config_path,
    load_config,
    resolve_paths,
)
from midframe.daemon.after_job import after_job_sink
from midframe.daemon.apprise_sink import apprise_sink
from midframe.daemon.arrivals import Arrivals
from midframe.daemon.control_target import DaemonControl
from midframe.daemon.farm_link import FarmLink
from midframe.daemon.folders import check_folders
from midframe.daemon.jobs.events import EventLog, JobEvents, Notifier
from midframe.daemon.jobs.pauses import SETTINGS
from midframe.daemon.jobs.progress_sinks import ProgressRecord, StatusLine
from midframe.daemon.jobs.services import Convert, JobServices, pipeline_convert
from midframe.daemon.jobs.settings_check import SettingsCheck
from midframe.daemon.jobs.store_pause import StoreFileWatch
from midframe.daemon.jobs.worker import Worker
from midframe.daemon.lifecycle import LifecycleListener, NoLifecycle
from midframe.daemon.lock import InboxLock, StateLock
from midframe.daemon.profiles import make_profile_folders
from midframe.daemon.settings import ConfigSource
from midframe.daemon.statedir import open_job_store, prepare_state_dir
from midframe.daemon.store.records import JobStore
from midframe.daemon.store.sqlite import DB_NAME
from midframe.daemon.watcher import InboxScanner, InboxWatcher
from midframe.desktop_bubbles import DesktopNotifier
from midframe.log import LOG_FILE_NAME

STOP_TIMEOUT_S = 240.0  # a batch on a slow CPU can take a while; systemd's TimeoutStopSec is longer
SINK_CLOSE_S = 10.0  # at a stop, how long queued Apprise messages and after-job commands may still take


class Daemon:
    """Everything ``midframe watch`` runs. ``start()`` returns at once; the work happens in threads.
    The control API's target is ``control`` (built at the start)."""

    pointer: Path | None = None  # where host.start_daemon recorded the state dir for clients

    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        lifecycle: LifecycleListener | None = None,
        store: JobStore | None = None,
        convert: Convert = pipeline_convert,
        environ: Mapping[str, str] | None = None,
        tick_seconds: float = 0.25,
    ) -> None:
        self.events = JobEvents()
        self.settings = ConfigSource(config_path, config, vet=self._vet, in_force_works=self._in_force_works,
                                     on_refused=lambda text: self.events.warning(text),
                                     on_change=self._settings_changed)
        self.paths = resolve_paths(config)
        self.lifecycle = lifecycle or NoLifecycle()
        self.event_log = EventLog()
        self.notifier = Notifier(
            self.event_log,
            desktop=DesktopNotifier.detect(dict(environ) if environ is not None else None),
            enabled=lambda: self.settings.snapshot().notifications.enabled,
            progress_interval=lambda: self.settings.snapshot().notifications.progress_interval_s,
        )
        self.sinks = [apprise_sink(self._notification_settings),
                      after_job_sink(self._notification_settings, job=lambda job_id: self.store.get(job_id))]
        for sink in self.sinks:
            self.notifier.subscribe(sink)
        self._store = store
        self._convert = convert
        self._tick_seconds = tick_seconds
        self._settings_check: SettingsCheck | None = None
        self._lock = StateLock(self.paths.state_dir)
        self._inbox_lock = InboxLock(self.paths.inbox, self.paths.state_dir)
        self._stop_requested = threading.Event()
        self._reload_requested = threading.Event()
        self._wakeup = threading.Event()
        self.worker: Worker | None = None
        self.control: DaemonControl | None = None
        self.watcher: InboxWatcher | None = None
        self.arrivals: Arrivals | None = None
        self.server: ControlServer | None = None
        self.farm: FarmLink | None = None  # with farm.scheduler set
        self.profile_folders: list[Path] = []
        self._closed = False
        self._store_watch: StoreFileWatch | None = None

    @property
    def store(self) -> JobStore:
        assert self._store is not None, "start() the daemon first"
        return self._store

    # --- start and stop ---------------------------------------------------------------------------

    def start(self) -> None:
        """Lock the state dir, recover, then start the API, the watcher and the worker."""
        config = self.settings.snapshot()
        paths = self.paths
        check_folders(paths, config)
        prepare_state_dir(paths.state_dir)
        for folder in (paths.inbox, paths.outbox):
            folder.mkdir(parents=True, exist_ok=True)
        self.profile_folders = make_profile_folders(paths.inbox, config.profiles, reserved=self._own_folders())
        self._lock.acquire()
        try:
            shared = self._inbox_lock.acquire(shared=config.daemon.shared_inbox)
            if shared is not None:
                logger.warning("{}", shared)
            self._start(config)
        except BaseException:
            self.close()
            raise

    def _start(self, config: Config) -> None:
        from midframe.engine import find_ffmpeg

        paths = self.paths
        ffmpeg = find_ffmpeg()
        moved_to = None
        if self._store is None:
            opened = open_job_store(paths.state_dir / DB_NAME)
            self._store, moved_to = opened.store, opened.moved_to
            if moved_to is not None:
                logger.warning("the job database was damaged ({}): moved it to {} and started a new one; the "
                               "inbox is scanned again, so the files still there are queued again", opened.damaged,
                               moved_to)
        self._subscribe(self._store)
        if moved_to is not None:  # news once the news has its subscribers
            self.events.warning(f"the job database was damaged; moved it to {moved_to.name} and started anew")
        self._settings_check = SettingsCheck.real(paths, ffmpeg=ffmpeg)
        convert = self._convert
        if config.farm.scheduler:
            self.farm = FarmLink.start(config.farm.scheduler, config, convert=self._convert, ffmpeg=ffmpeg, on_change=self._on_farm_change)
            convert = self.farm.convert
        farm = self.farm
        services = JobServices(
            self._store, paths, config=self.settings.snapshot, events=self.events, ffmpeg=ffmpeg,
            make_interpolator=self._make_interpolator, convert=convert, prepare=self._prepare_engine,
            check_settings=self.settings.problems, resettle=self._resettle,
        )
        if farm is not None:
            services = replace(services, check_farm=farm.problem, slots=farm.slots)
        worker = self.worker = Worker(services)
        self.control = DaemonControl(store=self._store, worker=worker, event_log=self.event_log, farm=farm,
                                     request_stop=self.request_stop, look_again=self.settings.look_again)
        self.worker.recover()
        if self.worker.pauses.user:
            logger.warning("paused since before the restart; `midframe resume` to continue")
        self.settings.vet()  # here, before the threads; from now on the housekeeping loop's alone
        self.worker.check_settings(config)
        self.server = self._control_server(config, self.control)
        url = self.server.start()
        write_control_file(paths.state_dir, url)
        daemon = config.daemon
        self.arrivals = Arrivals(self._store, worker, inbox=paths.inbox, ffmpeg=ffmpeg,
                                 profiles=lambda: self.settings.snapshot().profiles)
        self.arrivals.start()
        scanner = InboxScanner(
            paths.inbox, on_arrival=self.arrivals,
            extensions=daemon.extensions,
            settle_seconds=daemon.settle_seconds, recursive=daemon.recursive, subfolders=config.profiles,
            excluded=self._own_folders(),
        )
        self.watcher = InboxWatcher(scanner, polling=daemon.polling, rescan_seconds=daemon.rescan_seconds,
                                    tick_seconds=self._tick_seconds)
        self.watcher.start()
        self.worker.start()
        counts = self._store.counts()
        logger.info("midframe daemon ready: {} -> {} (API {}, {} queued, pid {})", paths.inbox, paths.outbox, url,
                    counts["queued"], os.getpid())
        logger.info("the log is in {}", paths.log_dir / LOG_FILE_NAME)
        logger.info("the dashboard: `midframe dashboard` opens it in your browser, logged in ({}/)", url)
        self.lifecycle.ready()

    def _subscribe(self, store: JobStore) -> None:
        """The job events' subscribers. A job's progress goes on record first: a record that cannot be
        written stops the job before anything says it moved on."""
        self.events.subscribe(ProgressRecord(store))
        self.events.subscribe(StatusLine(self.lifecycle.status))
        self.events.subscribe(self.notifier)

    def _own_folders(self) -> tuple[Path, ...]:
        paths = self.paths
        return (paths.done_dir, paths.failed_dir, paths.outbox, paths.state_dir, paths.log_dir)

    def check_store(self) -> None:
        """The housekeeping loop's look at the job database's file (``store_pause.StoreFileWatch``)."""
        if self._store_watch is None and self._store is not None:
            self._store_watch = StoreFileWatch(self._store, warn=self.events.warning)
        if self._store_watch is not None:
            self._store_watch.check()

    def _on_farm_change(self) -> None:
        if self.worker is not None:
            self.worker.recheck_pauses()

    def _control_server(self, config: Config, control: DaemonControl) -> ControlServer:
        """The control API with the dashboard beside it, on ``daemon.api_host``/``api_port``."""
        from midframe.web import Dashboard, Sessions, load_assets
        from midframe.web.upload import remove_stale_uploads

        for stale in remove_stale_uploads([self.paths.inbox, *self.profile_folders]):
            logger.info("removed {}, left by an upload that was cut short", stale)
        dashboard = Dashboard(control, sessions=Sessions(), config=self.settings.snapshot, inbox=self.paths.inbox,
                              assets=load_assets(), unseen=control.unseen_failures)
        return ControlServer(control, token=new_token(self.paths.state_dir), port=config.daemon.api_port,
                             host=config.daemon.api_host, web=dashboard)

    def request_stop(self) -> None:
        """Ask for a graceful stop, from any thread (a signal handler sets a SignalFlags flag instead)."""
        self._stop_requested.set()
        self._wakeup.set()

    def request_reload(self) -> None:
        self._reload_requested.set()
        self._wakeup.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until a stop or reload is asked for (or ``timeout``); True once a stop is asked for."""
        self._wakeup.wait(timeout)
        self._wakeup.clear()
        return self._stop_requested.is_set()

    def take_reload_request(self) -> bool:
        requested = self._reload_requested.is_set()
        self._reload_requested.clear()
        return requested

    def close(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop after the current batch and release everything; False if the worker did not stop in time."""
        if self._closed:
            return True
        self._closed = True
        self._stop_requested.set()
        clean = True
        if self.worker is not None:
            self.worker.request_stop()
            clean = self.worker.join(timeout)
            if not clean:
                logger.error("the current job did not stop within {:.0f} s; it resumes at the next start", timeout)
        if self.watcher is not None:
            self.watcher.stop()
        if self.arrivals is not None:
            self.arrivals.close(SINK_CLOSE_S)
        if self.farm is not None:
            self.farm.close()
        if self.server is not None:
            self.server.stop()
            remove_control_file(self.paths.state_dir)
        self.notifier.close()
        for sink in self.sinks:  # the last news (a job failed just before the stop), briefly
            if not sink.close(SINK_CLOSE_S):
                logger.warning("{}: still busy at the stop; what it had left is dropped", sink.name)
        if self._store is not None and clean:
            self._store.close()
        if self.server is not None:
            logger.info("midframe daemon stopped")
        self._inbox_lock.release()
        self._lock.release()
        return clean

    # --- config and engine ----------------------------------------------------------------------

    def _notification_settings(self) -> NotificationsConfig:
        return self.settings.snapshot().notifications

    def reload_config(self) -> Config:
        """SIGHUP's re-read; the housekeeping loop's (``settings`` has one owner)."""
        return self.settings.reload()

    def _vet(self, config: Config) -> list[str]:
        return self._settings_check(config) if self._settings_check is not None else []

    def _in_force_works(self) -> bool:
        return self.worker is None or self.worker.pauses.get(SETTINGS) is None

    def _settings_changed(self) -> None:
        """A new config or verdict is installed: the pauses that wait for one lift (or reword) now."""
        if self.worker is not None:
            self.worker.recheck_pauses()

    def _prepare_engine(self) -> None:
        """Fetch the weights the configured engine runs with (rife's, auto's) if they are missing, before
        the first job; the registry says which."""
        from midframe.engine import weights_providers

        for provider in weights_providers(self.settings.snapshot().engine.name).values():
            provider.ensure(self.paths.models_dir)
        self.settings.look_again()  # a pause for missing weights lifts at the housekeeping loop's next look

    def _make_interpolator(self, settings: EngineConfig) -> Any:
        from midframe.engine import create_interpolator, engine_chosen

        fallback = not engine_chosen(self.settings.snapshot().engine)
        return create_interpolator(settings, models_dir=self.paths.models_dir, fallback=fallback)

    def _resettle(self, path: Path, quiet_s: float) -> None:
        if self.watcher is not None:
            self.watcher.resettle(path, quiet_s)

    # --- what the housekeeping loop reads ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``status --json`` (``control_target.DaemonControl.status``)."""
        assert self.control is not None, "start() the daemon first"
        return self.control.status()

    def status_line(self) -> str:
        assert self.control is not None, "start() the daemon first"
        return self.control.status_line()

def build_daemon(config_path: Path | None, *, lifecycle: LifecycleListener | None = None) -> Daemon:
    """With no ``--config``, the default file: read if it is there, and watched either way, so a file
    written after the start (`midframe config init`) is taken like any edit."""
    path = Path(config_path) if config_path is not None else default_config_path()
    config = load_config(path) if config_path is not None or path.exists() else Config()
    return Daemon(config, config_path=path, lifecycle=lifecycle)
