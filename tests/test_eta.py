"""An honest status: the rate and time left come from the steady part of a run (not the one-time
model preparation), stand still while paused, and a status says when a model is being prepared."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pytest

from midframe.daemon.jobs.running import doing
from midframe.engine.eta import SteadyRate
from midframe.engine.interpolators.base import FramePair
from midframe.sentences import status_sentence
from midframe.tray.view import view_from_status
from tests.engine_helpers import RecordingBlend, run_convert
from tests.media import make_clip


def test_the_one_time_preparation_is_not_counted_in_the_rate():
    rate = SteadyRate(frames=0, now=100.0)
    rate.sample(0, now=100.0)
    assert rate.fps() == 0.0 and rate.eta_s(1000) is None        # nothing made: no rate, no promise
    rate.sample(2, now=130.0)  # the first batch: 30 s of graph conversion, then 2 frames
    assert rate.fps() == pytest.approx(2 / 30)                    # the only measure so far
    rate.sample(4, now=131.0)
    rate.sample(6, now=132.0)
    assert rate.fps() == pytest.approx(2.0)
    assert rate.eta_s(1000) == pytest.approx(994 / 2)              # from the start it would be 994 / (6 / 32)
    rate.sample(1000, now=629.0)
    assert rate.eta_s(1000) == 0.0


def test_the_time_left_stands_still_while_paused_and_the_pause_is_not_counted():
    rate = SteadyRate(frames=10, now=0.0)
    rate.sample(12, now=1.0)
    rate.sample(22, now=2.0)
    assert rate.fps() == pytest.approx(10.0) and rate.eta_s(122) == pytest.approx(10.0)
    rate.pause(now=2.0)
    assert rate.eta_s(122) == pytest.approx(10.0) and rate.active_s(now=500.0) == pytest.approx(2.0)
    rate.resume(now=602.0)                                      # ten minutes paused
    rate.sample(32, now=603.0)
    assert rate.fps() == pytest.approx(10.0)                     # not 20 frames in 603 s
    assert rate.eta_s(122) == pytest.approx(9.0)
    assert rate.active_s(now=603.0) == pytest.approx(3.0)


def test_a_model_prepared_again_starts_the_measure_again():
    rate = SteadyRate(frames=0, now=0.0)
    for second in range(1, 5):
        rate.sample(second * 4, now=float(second))
    rate.rewarm()
    rate.sample(18, now=64.0)                                   # a minute of preparation, then one batch
    assert rate.fps() == pytest.approx(2 / 60)
    rate.sample(22, now=65.0)
    assert rate.fps() == pytest.approx(4.0)


class PreparingBlend(RecordingBlend):
    """Blend with a first batch that prepares itself first, as RIFE converting a graph does."""

    def __init__(self) -> None:
        super().__init__()
        self.on_preparing = None

    def interpolate(self, batch: Sequence[FramePair]) -> list[np.ndarray]:
        if not self.batches and self.on_preparing is not None:
            self.on_preparing("preparing blend for 128x96 (once per size, about 1 s)")
            time.sleep(1.0)
            self.on_preparing(None)
        return super().interpolate(batch)


def test_the_frame_loop_reports_a_preparation_as_it_happens(tmp_path):
    """Real ffmpeg on a real clip: a report says what is prepared, with no time left promised."""
    clip = make_clip(tmp_path / "clip.mkv", seconds=1.0, fps="25", size="128x96")
    seen = []
    engine = PreparingBlend()
    run_convert(clip, tmp_path / "out.mkv", on_progress=seen.append, interpolator=engine)
    preparing = [p for p in seen if p.preparing]
    assert [p.preparing for p in preparing] == ["preparing blend for 128x96 (once per size, about 1 s)"]
    assert preparing[0].eta_s is None and preparing[0].frames_done <= 1  # frame 0 is a kept one
    after = seen[seen.index(preparing[0]) + 1:]
    assert after and all(p.preparing is None for p in after)
    assert after[-1].frames_done == 50 and after[-1].eta_s == 0.0
    # The speed leaves the preparing second out: above the overall average, which counts it.
    assert after[-1].fps > after[-1].frames_done / after[-1].elapsed_s
    assert engine.on_preparing is None                          # let go of when the run ends


STATUS = {"state": "working", "queued": 2, "done": 1, "failed": 0, "paused_reason": None, "farm": None,
          "current": {"id": 3, "name": "film.mkv", "frames_done": 0, "frames_total": 4800, "progress": 0.0,
                      "fps": 0.0, "elapsed_s": 12.0, "eta_s": None,
                      "preparing": "preparing RIFE for 1920x1080 (once per size, about 30 s)"}}


def test_every_status_line_says_what_is_prepared_instead_of_no_progress():
    line = "preparing RIFE for 1920x1080 (once per size, about 30 s)"
    assert status_sentence(STATUS).splitlines()[1] == f"  film.mkv: {line}"
    view = view_from_status(STATUS)
    assert line in view.tooltip and line in view.status_line and "ETA" not in view.tooltip
    assert doing(0.0, None, line) == line
    assert doing(0.4, 180.0, None).startswith("40% ETA ")
    working = {**STATUS, "current": {**STATUS["current"], "preparing": None, "progress": 0.25, "eta_s": 60.0}}
    assert "25.0%" in status_sentence(working) and "preparing" not in status_sentence(working)
