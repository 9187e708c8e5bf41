"""What the dashboard page shows, made from ``status`` and the job rows: pure, no I/O.

The page polls one answer (``GET /dashboard/state``) instead of several, so what it draws is
always one consistent moment: the state and current job, the queue in the order it will run, the
most recent finished jobs, and the farm when there is one.

Names and the daemon's texts (errors, the pause reason, the farm's problem) are escaped as the CLI
escapes them (:func:`midframe.sentences.said`): control characters, line separators, bidi overrides
(U+202E turns ``gpj.exe`` into what reads as ``exe.jpg``) and bytes that are not UTF-8 show as
backslash escapes, so a name reads on the page as it does in ``midframe jobs`` and the log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from midframe.sentences import said

HISTORY_ROWS = 100
SCENE_LINES = 20  # engine auto's scenes listed per finished job
FINAL_STATES = ("done", "failed", "cancelled")


def _said(text: Any) -> Any:
    return None if text is None else said(text)


def _folder(job: Mapping[str, Any]) -> str:
    """The inbox sub-folder the file came in (a profile's folder), "" for the inbox itself."""
    parent = PurePath(str(job.get("relpath") or job.get("name") or "")).parent.as_posix()
    return "" if parent == "." else said(parent)


def _queued(job: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": job["id"],
        "name": said(job["name"]),
        "folder": _folder(job),
        "profile": _said(job.get("profile")),
        "size": job.get("size", 0),
        "attempts": job.get("attempts", 0),
        "error": _said(job.get("error")),  # why an earlier attempt did not finish, when one did not
        "not_before": job.get("not_before"),
    }


def linked_note(job: Mapping[str, Any]) -> str | None:
    """For a file whose output was already made (the same content, the same settings): which job made
    it. Such a job converts nothing, so its time is no conversion's time."""
    earlier = job.get("duplicate_of")
    return None if earlier is None else f"linked to the earlier output of job {earlier} (nothing converted)"


def _finished(job: Mapping[str, Any]) -> dict[str, Any]:
    started, finished = job.get("started_at"), job.get("finished_at")
    output = job.get("output")
    linked = linked_note(job)
    if linked is not None:
        started = None
    return {
        "id": job["id"],
        "name": said(job["name"]),
        "folder": _folder(job),
        "profile": _said(job.get("profile")),
        "state": job["state"],
        "output": said(PurePath(output).name) if output else None,
        "duration_s": round(finished - started, 1) if started is not None and finished is not None else None,
        "finished_at": finished,
        "error": _said(job.get("error")) if job["state"] != "done" else None,
        "duplicate_of": job.get("duplicate_of"),
        "linked": linked,
        "workers": job.get("workers"),  # farm workers: {address: segments made}
        "engines": engine_summary(job.get("scenes") or []),
    }


def engine_summary(scenes: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Engine auto's choices for a finished job in words: a line, and one line per scene (None without)."""
    if not scenes:
        return None
    counts: dict[str, int] = {}
    for scene in scenes:
        counts[scene["engine"]] = counts.get(scene["engine"], 0) + 1
    line = "auto: " + ", ".join(f"{name} for {count} scene{'' if count == 1 else 's'}" for name, count in counts.items())
    details = []
    for scene in scenes[:SCENE_LINES]:  # the page polls every second: a film's hundreds of scenes stay out
        scores = ", ".join(f"{name} {value:.2f} dB" for name, value in (scene.get("scores") or {}).items())
        details.append(f"frames {scene['start']}-{scene['end'] - 1}: {scene['engine']}"
                       + (f" ({scores})" if scores else " (not sampled)"))
    if len(scenes) > SCENE_LINES:
        details.append(f"... and {len(scenes) - SCENE_LINES} more scenes (midframe jobs --json lists them all)")
    return {"line": line, "scenes": details}


def dashboard_state(status: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]], *,
                    folders: Sequence[str], upload_max_bytes: int, history_rows: int = HISTORY_ROWS) -> dict[str, Any]:
    current = status.get("current")
    if current is not None:
        row = next((job for job in jobs if job["id"] == current["id"]), None)
        current = {**current, "name": said(current["name"]), "folder": _folder(row) if row else "",
                   "profile": _said(row.get("profile")) if row else None,
                   "workers": row.get("workers") if row else None}
    farm = status.get("farm")
    if farm:
        farm = {**farm, "problem": _said(farm.get("problem"))}
    queue = sorted((job for job in jobs if job["state"] == "queued"),
                   key=lambda job: (job.get("queue_seq", 0), job["id"]))
    finished = sorted((job for job in jobs if job["state"] in FINAL_STATES),
                      key=lambda job: (job.get("finished_at") or 0.0, job["id"]), reverse=True)
    return {
        "status": {**status, "current": current, "paused_reason": _said(status.get("paused_reason")),
                   "farm": farm},
        "queue": [_queued(job) for job in queue],
        "history": [_finished(job) for job in finished[:history_rows]],
        "history_total": len(finished),
        "farm": farm,
        "folders": list(folders),
        "upload_max_bytes": upload_max_bytes,
    }


def unseen_view(unseen: Mapping[str, Any]) -> dict[str, Any]:
    """The failures not seen yet (``midframe.daemon.unseen``), their names escaped as everywhere else."""
    return {**unseen, "failed_unseen_names": [said(name) for name in unseen.get("failed_unseen_names", [])]}
