"""What the control API and the dashboard ask of the daemon (``midframe.api.control.ControlTarget``):
its status, the jobs, pause, resume, retry, cancel, the news feed. It reads the worker, the store and
the farm the composition root built, and asks the root for a stop; it builds nothing itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from midframe.daemon.farm_link import FarmLink
from midframe.daemon.jobs.events import EventLog
from midframe.daemon.jobs.running import doing
from midframe.daemon.jobs.worker import Worker
from midframe.daemon.store.records import JobStore
from midframe.daemon.unseen import UnseenFailures


class DaemonControl:
    def __init__(self, *, store: JobStore, worker: Worker, event_log: EventLog, farm: FarmLink | None,
                 request_stop: Callable[[], None], look_again: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._look_again = look_again
        self._worker = worker
        self._event_log = event_log
        self._farm = farm
        self._request_stop = request_stop

    def status(self) -> dict[str, Any]:
        counts = self._store.counts()
        current = self._worker.current()
        reason = self._worker.pause_reason
        state = "paused" if reason is not None else "working" if current else "idle"
        return {"state": state, "current": current, "queued": counts["queued"], "done": counts["done"],
                "failed": counts["failed"], "paused_reason": reason,
                "farm": None if self._farm is None else self._farm.state()}

    def status_line(self) -> str:
        """One line for the service manager (``systemctl status``)."""
        status = self.status()
        current = status["current"]
        if current and current.get("stalled"):
            return f"{status['state']}: {current['name']} {current['progress']:.0%}, stalled: {current['stalled']}"
        if current:
            now = doing(current["progress"], current["eta_s"], current.get("preparing"))
            return f"{status['state']}: {current['name']} {now}; {status['queued']} queued"
        return f"{status['state']}; {status['queued']} queued, {status['done']} done, {status['failed']} failed"

    def unseen_failures(self) -> dict[str, Any]:
        """``{"failed_unseen": N, "failed_unseen_names": [...]}``: failures nobody has marked seen yet."""
        return UnseenFailures(self._store).status()

    def failures_seen(self) -> dict[str, Any]:
        """A person has seen the failures so far (tray, dashboard): they are no longer marked."""
        UnseenFailures(self._store).mark_seen()
        logger.info("the failures so far are marked as seen")
        return self.unseen_failures()

    def pause(self) -> dict[str, Any]:
        self._worker.pause()
        return self.status()

    def resume(self) -> dict[str, Any]:
        self._look_again()  # a pause for a setting: vetted again by the housekeeping loop at once
        self._worker.resume()
        return self.status()

    def stop(self) -> dict[str, Any]:
        logger.info("stop requested through the control API")
        self._request_stop()
        return {"state": "stopping"}

    def jobs(self) -> list[dict[str, Any]]:
        rows = [job.to_dict() for job in self._store.jobs()]
        made = self._store.workers()
        chosen = self._store.scenes()
        for row in rows:
            if row["id"] in chosen:
                row["scenes"] = chosen[row["id"]]  # engine auto: {start, end, engine, scores, samples} per scene
            live = None
            if self._farm is not None and row["state"] == "running":
                live = self._farm.live_workers(self._worker.work_dir(row["id"]))
            if live is not None or row["id"] in made:
                row["workers"] = live if live is not None else made[row["id"]]
        return rows

    def retry(self, job_id: int) -> dict[str, Any]:
        return self._worker.retry(job_id).to_dict()

    def cancel(self, job_id: int) -> dict[str, Any]:
        return self._worker.cancel(job_id).to_dict()

    def events(self, after: int = 0, *, client: str = "cli") -> dict[str, Any]:
        # The news feed also says which failures are still news (the tray marks its icon with it).
        return {**self._event_log.since(after, client=client), **self.unseen_failures()}

    def move_to_front(self, job_id: int) -> dict[str, Any]:
        job = self._store.move_to_front(job_id)
        logger.info("job {} moved to the front of the queue: {}", job.id, job.name)
        return job.to_dict()
