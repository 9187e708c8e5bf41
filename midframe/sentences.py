"""The daemon's answers as sentences for the ``midframe`` control commands (pure: dicts in, text out).

Names and the daemon's texts are escaped as in log lines: a newline in a name forges no line, and no
name (not UTF-8, or beyond what the terminal's encoding can show) stops ``print``.
"""

from __future__ import annotations

from typing import Any

from midframe.log import escape


def said(text: Any) -> str:
    """A name or a text from the daemon, as one printable line."""
    return escape(str(text))


def counts(status: dict[str, Any]) -> str:
    return f"queued {status['queued']}, done {status['done']}, failed {status['failed']}"


def status_sentence(status: dict[str, Any]) -> str:
    line = f"{status['state']}; {counts(status)}"
    if status.get("paused_reason"):
        line += f"\n  why: {said(status['paused_reason'])}"
    current = status.get("current")
    if current and current.get("preparing"):  # no frames yet: say what it does instead of 0.0% ETA ?
        line += f"\n  {said(current['name'])}: {said(current['preparing'])}"
    elif current:
        line += (
            f"\n  {said(current['name'])}: {current['progress'] * 100:.1f}% "
            f"({current['frames_done']}/{current['frames_total']} frames, {current['fps']:.2f} fps, "
            f"ETA {format_duration(current['eta_s'])})"
        )
        if current.get("stalled"):
            line += f"\n  stalled: {said(current['stalled'])}"
    farm = status.get("farm")
    if farm:
        line += (f"\n  farm {said(farm['scheduler'])}: {farm['workers']} workers, {farm['busy']} busy"
                 + (f" ({said(farm['problem'])})" if farm.get("problem") else ""))
    return line


def paused_sentence(status: dict[str, Any]) -> str:
    current = status.get("current")
    held = f"{said(current['name'])} holds at {current['progress'] * 100:.0f}% after its current batch; " if current else ""
    return f"paused: {held}{counts(status)}. `midframe resume` continues (a pause survives a restart)."


def resumed_sentence(status: dict[str, Any]) -> str:
    current = status.get("current")
    doing = f"working on {said(current['name'])}" if current else status["state"]
    return f"resumed: {doing}; {counts(status)}"


def jobs_sentence(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return "no jobs yet: videos dropped into the inbox show up here"
    lines = []
    for job in jobs:
        error = f"  ({said(job['error'])})" if job.get("error") else ""
        if job.get("duplicate_of") is not None and not error:  # done without converting: say whose output
            error = f"  (linked to the earlier output of job {job['duplicate_of']}, nothing converted)"
        profile = f"[{said(job['profile'])}] " if job.get("profile") else ""
        lines.append(f"{job['id']:>5}  {job['state']:<9}  {profile}{said(job['name'])}{error}")
    return "\n".join(lines)


def cancelled_sentence(job: dict[str, Any]) -> str:
    later = " after its current batch" if job.get("state") == "running" else ""
    return f"job {job['id']} ({said(job['name'])}) is cancelled{later}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
