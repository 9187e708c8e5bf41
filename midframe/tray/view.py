"""What the tray shows for one answer of the control API (or for none): pure, no toolkit.

Names and the daemon's texts are escaped as in log lines (``midframe.log.escape``): a toolkit gets one
line of valid text, whatever bytes a file name holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from midframe.log import escape
from midframe.sentences import format_duration
from midframe.tray.icons import TrayState, draw_icon

# Windows cuts tooltips at 127 characters; the others show long ones badly.
TOOLTIP_MAX = 127
# The progress ring is redrawn in steps of this many percent, not on every frame.
RING_STEP = 5
# Why it is paused: a menu line this long at most (`midframe status` has the whole sentence).
WHY_MAX = 160


@dataclass(frozen=True)
class TrayView:
    state: TrayState
    status_line: str  # the disabled first line of the menu
    tooltip: str
    ring: int | None = None  # progress in percent (RING_STEP steps) while working
    why_line: str = ""  # paused: the disabled line under the status line that says why
    failed_line: str = ""  # failures not yet seen: the menu item that opens failed/ and marks them seen

    @property
    def online(self) -> bool:
        return self.state != "offline"

    @property
    def icon_key(self) -> tuple[TrayState, int | None, bool]:
        """Two views with the same key draw the same picture."""
        return self.state, self.ring, bool(self.failed_line)


def picture(view: TrayView) -> Image.Image:
    """The icon for ``view``: the ring drawn from its percent as the 0..1 fraction ``draw_icon`` takes,
    with a red dot while failures are unseen."""
    return draw_icon(view.state, None if view.ring is None else view.ring / 100, badge=bool(view.failed_line))


def offline_view(reason: str = "", *, line: str = "Daemon not answering") -> TrayView:
    tooltip = "midframe: daemon not answering" + (f" ({escape(reason)})" if reason else "")
    return TrayView("offline", _clip(escape(line), TOOLTIP_MAX), _clip(tooltip, TOOLTIP_MAX))


def view_from_status(status: dict[str, Any], unseen: dict[str, Any] | None = None) -> TrayView:
    """The view of a ``status --json`` answer (DESIGN.md section 3), with the failures not yet seen
    from ``unseen`` (``GET /events``'s ``failed_unseen`` and ``failed_unseen_names``)."""
    said = status.get("state")
    state: TrayState = said if said in ("idle", "working", "paused") else "idle"
    queued = int(status.get("queued") or 0)
    queue_text = f"{queued} queued" + _farm_text(status.get("farm"))
    current = status.get("current")
    why = escape(str(status.get("paused_reason") or "")) if state == "paused" else ""
    ring = None
    if current:
        progress = float(current.get("progress") or 0.0)
        percent = progress * 100
        stalled = current.get("stalled")  # an ffmpeg process made no progress: no ETA then, and why
        when = "stalled" if stalled else f"ETA {format_duration(current.get('eta_s'))}"
        name = escape(str(current.get("name", "?")))
        job = f"{name} {percent:.0f}% {when}"
        if current.get("preparing") and not stalled:  # no frames yet: what it does, not 0% ETA ?
            job = f"{name}: {escape(str(current['preparing']))}"
        status_line = f"{state.capitalize()}: {job} · {queue_text}"
        said = f"{job} ({escape(str(stalled))}), {queue_text}" if stalled else f"{job}, {queue_text}"
        tooltip = f"midframe {state}: {said}"
        if state == "working":
            ring = min(int(percent // RING_STEP) * RING_STEP, 100)
    else:
        status_line = f"{state.capitalize()} · {queue_text}"
        said = queue_text
        tooltip = f"midframe {state}, {said}"
    if why:  # first, so that a clipped tooltip loses the file name rather than the reason
        tooltip = f"midframe paused: {why} · {said}"
    why_line = _clip(f"Why: {why}", WHY_MAX) if why else ""
    failed = failed_text(unseen or {})
    if failed:  # first of all: it stays news until seen, whatever runs now
        tooltip = f"{failed} · {tooltip}"
    failed_line = _clip(f"{failed} — open failed folder", WHY_MAX) if failed else ""
    return TrayView(state, status_line, _clip(tooltip, TOOLTIP_MAX), ring, why_line, failed_line)


def failed_text(unseen: dict[str, Any]) -> str:
    """``1 failed: x.mp4`` / ``3 failed: c.mp4, b.mp4, …`` for the failures not yet seen; "" for none."""
    count = int(unseen.get("failed_unseen") or 0)
    if count <= 0:
        return ""
    names = [escape(str(name)) for name in unseen.get("failed_unseen_names") or []]
    more = ", …" if count > len(names) else ""
    return f"{count} failed: {', '.join(names)}{more}" if names else f"{count} failed"


def _farm_text(farm: dict[str, Any] | None) -> str:
    """`` · 3 farm workers``, or `` · farm offline`` while its scheduler does not answer; empty without a farm."""
    if not farm:
        return ""
    if not farm.get("connected", True):
        return " · farm offline"
    workers = int(farm.get("workers") or 0)
    return f" · {workers} farm worker{'' if workers == 1 else 's'}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
