"""Per-folder profiles and slow motion, the pure parts: the config (merge, errors that name the profile
and the key, the example's profiles), the slow-motion timeline, which folders the watcher takes, the
profile of an arrival, the profile folders, and what the job store records."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from midframe.config import Config, config_from_mapping, example_config_text
from midframe.daemon.jobs.naming import settings_json, settings_key
from midframe.daemon.profiles import make_profile_folders, profile_of
from midframe.daemon.store.memory import MemoryJobStore
from midframe.daemon.store.sqlite import SqliteJobStore
from midframe.engine.plan import build_timeline
from midframe.engine.timeline import factor_timeline, fps_timeline, slow_motion
from midframe.errors import ConfigError, DaemonError
from tests.test_watcher import INBOX, FakeFS, make_scanner

PROFILES = {
    "engine": {"name": "blend"},
    "output": {"crf": 20},
    "profiles": {
        "60fps": {"engine": {"target_fps": 60}},
        "slowmo-4x": {"engine": {"mode": "slowmo", "factor": 4}, "output": {"slowmo_audio": "stretch"}},
    },
}


# --- the config ----------------------------------------------------------------------------------


def test_a_profile_is_the_top_level_with_its_own_keys_over_it():
    config = config_from_mapping(PROFILES)
    assert config.effective(None) is config
    fast = config.effective("60fps")
    assert (fast.engine.name, fast.engine.target_fps, fast.engine.factor, fast.output.crf) == ("blend", 60, 2, 20)
    slow = config.effective("slowmo-4x")
    assert (slow.engine.mode, slow.engine.factor, slow.engine.target_fps) == ("slowmo", 4, None)
    assert (slow.output.slowmo_audio, slow.output.crf, config.output.slowmo_audio) == ("stretch", 20, "drop")
    assert "name" in slow.engine.model_fields_set                  # named at the top level: still a choice
    assert slow.daemon == config.daemon and slow.inbox == config.inbox
    with pytest.raises(KeyError):
        config.effective("nope")
    # Each profile has its own settings key: the same file in two folders is two different outputs.
    keys = {settings_key(config.effective(name).engine, config.effective(name).output)
            for name in (None, "60fps", "slowmo-4x")}
    assert len(keys) == 3


@pytest.mark.parametrize(("profiles", "expected"), [
    ({"p": {"engine": {"bogus": 1}}}, "unknown key 'profiles.p.engine.bogus'; allowed here: name, factor"),
    ({"p": {"output": {"colour": "red"}}}, "unknown key 'profiles.p.output.colour'; allowed here: codec"),
    ({"p": {"daemon": {"polling": True}}}, "unknown key 'profiles.p.daemon'; allowed here: engine, output"),
    ({"p": {"engine": {"factor": 40}}}, "profiles.p.engine.factor = 40"),
    ({"p": {"engine": {"mode": "fast"}}}, "profiles.p.engine.mode = 'fast'"),
    ({"p": {"output": {"slowmo_audio": "mute"}}}, "profiles.p.output.slowmo_audio = 'mute'"),
    ({"p": {"engine": {"mode": "slowmo", "target_fps": 60}}}, "profiles.p.engine.mode = 'slowmo': slow motion"),
    ({"../up": {}}, "'../up' cannot name a profile"),
    ({".hidden": {}}, "'.hidden' cannot name a profile"),
    ({"Slow": {}, "slow": {}}, "'Slow' and 'slow' differ only in case"),
    ({"p": "60fps"}, "profiles.p = '60fps'"),
])
def test_a_bad_profile_names_the_profile_and_the_key(profiles, expected):
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"profiles": profiles}, source="cfg.yaml")
    assert expected in str(caught.value)


def test_a_top_level_mistake_is_reported_once_not_again_for_every_profile():
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"engine": {"factor": 1}, "profiles": {"a": {}, "b": {"engine": {"name": "dis"}}}},
                            source="cfg")
    assert str(caught.value).splitlines() == ["cfg: engine.factor = 1: Input should be greater than or equal to 2"]
    with pytest.raises(ConfigError, match="profiles.s.engine.mode = 'slowmo'"):
        # The top level asks for an exact rate: a slow-motion profile must say target_fps: null itself.
        config_from_mapping({"engine": {"target_fps": 30}, "profiles": {"s": {"engine": {"mode": "slowmo"}}}})
    ok = config_from_mapping({"engine": {"target_fps": 30},
                              "profiles": {"s": {"engine": {"mode": "slowmo", "target_fps": None}}}})
    assert ok.effective("s").engine.target_fps is None and ok.engine.target_fps == 30


def test_the_examples_in_config_example_yaml_are_valid_profiles():
    text = example_config_text()
    block = re.search(r"^# profiles:\n((?:#   .*\n)+)", text, flags=re.M)
    assert block, "config.example.yaml shows example profiles, commented out"
    uncommented = "profiles:\n" + "".join(line[2:] + "\n" for line in block.group(1).splitlines())
    data = yaml.safe_load(text)
    data.update(yaml.safe_load(uncommented))
    config = config_from_mapping(data)
    assert list(config.profiles) == ["60fps", "slowmo-4x"]
    assert config.effective("60fps").engine.target_fps == 60
    slow = config.effective("slowmo-4x")
    assert (slow.engine.mode, slow.engine.factor, slow.output.slowmo_audio) == ("slowmo", 4, "stretch")
    assert config.profiles and config_from_mapping(yaml.safe_load(text)) == Config()


# --- the slow-motion timeline ----------------------------------------------------------------------

RATES = [Fraction(24000, 1001), Fraction(30000, 1001), Fraction(25), Fraction(24), Fraction(50), Fraction(12)]


@settings(max_examples=150, deadline=None)
@given(frames=st.integers(1, 3000), factor=st.integers(2, 16), fps=st.sampled_from(RATES))
def test_slow_motion_keeps_the_rate_and_lasts_factor_times_as_long(frames, factor, fps):
    smooth = factor_timeline(frames_in=frames, factor=factor, fps_in=fps)
    slow = slow_motion(smooth, factor=factor)
    assert slow.fps_out == fps and slow.frames_out == frames * factor and slow.frames_in == frames
    assert slow.duration_out == factor * Fraction(frames) / fps == factor * smooth.duration_out
    for k in {0, frames // 2, frames - 1}:
        assert slow.frame(factor * k) == smooth.frame(factor * k)
        assert (slow.frame(factor * k).source, slow.frame(factor * k).t) == (k, 0.0)   # every source frame kept
    start = (frames * factor) // 3
    assert list(slow.frames(start))[:50] == list(smooth.frames(start))[:50]


@settings(max_examples=80, deadline=None)
@given(gaps=st.lists(st.sampled_from([Fraction(1, 30), Fraction(1, 24), Fraction(1, 60), Fraction(1, 25)]),
                     min_size=1, max_size=400), factor=st.integers(2, 8))
def test_slow_motion_of_a_vfr_source_lasts_factor_times_as_long_within_half_a_frame(gaps, factor):
    stamps = [Fraction(0)]
    for gap in gaps[:-1]:
        stamps.append(stamps[-1] + gap)
    duration = stamps[-1] + gaps[-1]
    average = Fraction(len(stamps)) / duration
    slow = slow_motion(fps_timeline(timestamps=stamps, duration=duration, target_fps=factor * average), factor=factor)
    assert slow.fps_out == average
    assert abs(slow.duration_out - factor * duration) <= Fraction(1, 2) / average


def test_slow_motion_factor_one_is_the_timeline_itself_and_below_is_refused():
    smooth = factor_timeline(frames_in=10, factor=2, fps_in=Fraction(25))
    assert slow_motion(smooth, factor=1) is smooth
    with pytest.raises(ValueError):
        slow_motion(smooth, factor=0)
    with pytest.raises(IndexError):
        slow_motion(smooth, factor=2).frame(20)


def test_the_plan_builds_slow_motion_for_constant_and_variable_rate_sources():
    config = config_from_mapping(PROFILES)
    cfr = SimpleNamespace(vfr=False, frame_count=50, fps=Fraction(25), avg_frame_rate=Fraction(25))
    slow = build_timeline(cfr, config.effective("slowmo-4x").engine)
    assert (slow.fps_out, slow.frames_out, slow.duration_out) == (25, 200, 8)
    smooth = build_timeline(cfr, config.engine)
    assert (smooth.fps_out, smooth.frames_out, smooth.duration_out) == (50, 100, 2)
    stamps = [Fraction(i, 30) for i in range(10)] + [Fraction(10, 30) + Fraction(i, 15) for i in range(10)]
    vfr = SimpleNamespace(vfr=True, timestamps=stamps, duration=Fraction(30 + 20, 30) - Fraction(1, 15) +
                          Fraction(1, 15), avg_frame_rate=Fraction(20) / Fraction(50, 30), frame_count=20)
    vfr.fps = vfr.avg_frame_rate  # VideoInfo.fps of a variable-rate source without a nominal grid
    slow = build_timeline(vfr, config.effective("slowmo-4x").engine)
    assert slow.fps_out == vfr.avg_frame_rate and abs(slow.duration_out - 4 * vfr.duration) <= 1 / slow.fps_out


def test_slow_motion_audio_is_an_exact_chain_of_atempo_filters_and_the_rest_is_dropped():
    from midframe.engine.plan import StreamPlan
    from midframe.engine.slowmo import atempo_chain, slow_streams

    def product(chain: str) -> float:
        return float(np.prod([float(part.removeprefix("atempo=")) for part in chain.split(",")]))

    assert atempo_chain(2) == "atempo=0.5" and atempo_chain(4) == "atempo=0.5,atempo=0.5"
    for factor in range(1, 17):
        parts = [float(part.removeprefix("atempo=")) for part in atempo_chain(factor).split(",")]
        assert all(0.5 <= part <= 1.0 for part in parts) and abs(product(atempo_chain(factor)) - 1 / factor) < 1e-12
    streams = [StreamPlan(1, "audio", "aac", "copy"), StreamPlan(2, "audio", "opus", "libopus"),
               StreamPlan(3, "audio", "dts", "drop"), StreamPlan(4, "subtitle", "subrip", "copy")]
    stretched = slow_streams(streams, factor=3, audio="stretch", encoder_for=lambda stream: "aac")
    assert [(s.action, s.filter) for s in stretched] == [
        ("aac", atempo_chain(3)), ("libopus", atempo_chain(3)), ("drop", None), ("drop", None)]
    none_fits = slow_streams(streams[:1], factor=3, audio="stretch", encoder_for=lambda stream: None)
    assert none_fits[0].action == "drop"
    assert {s.action for s in slow_streams(streams, factor=3, audio="drop", encoder_for=lambda s: "aac")} == {"drop"}


# --- folders, arrivals, the store ------------------------------------------------------------------------


def test_the_watcher_takes_the_profile_folders_but_not_deeper_or_other_folders():
    fs = FakeFS()
    for rel in ("top.mp4", "60fps/a.mp4", "60fps/deeper/b.mp4", "holiday/c.mp4", "slowmo-4x/d.mkv"):
        fs.write(INBOX / rel, 10)
    scanner, arrived = make_scanner(fs, settle=0.0)
    scanner.subfolders = frozenset({"60fps", "slowmo-4x"})
    scanner.rescan(now=0.0)
    scanner.poll(now=0.0)
    assert sorted(p.relative_to(INBOX).as_posix() for p in arrived) == ["60fps/a.mp4", "slowmo-4x/d.mkv", "top.mp4"]
    assert scanner.recursive_anywhere


def test_the_profile_of_an_arrival_is_its_first_folder_when_that_is_a_profile():
    profiles = ["60fps", "slowmo-4x"]
    assert profile_of("clip.mp4", profiles) is None
    assert profile_of("60fps/clip.mp4", profiles) == "60fps"
    assert profile_of("60fps/sub/clip.mp4", profiles) == "60fps"                 # recursive mode
    assert profile_of("other/clip.mp4", profiles) is None
    assert profile_of("60fps", profiles) is None


def test_profile_folders_are_made_and_never_one_of_midframes_own(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    made = make_profile_folders(inbox, ["60fps", "slowmo-4x"], reserved=[tmp_path / "done"])
    assert made == [inbox / "60fps", inbox / "slowmo-4x"] and all(folder.is_dir() for folder in made)
    assert make_profile_folders(inbox, ["60fps"], reserved=[]) == [inbox / "60fps"]       # again: fine
    with pytest.raises(DaemonError, match="profiles.done: .* is also one of midframe's own folders"):
        make_profile_folders(inbox, ["done"], reserved=[inbox / "done"])
    (inbox / "blocked").write_text("a file")
    with pytest.raises(DaemonError, match="profiles.blocked: .* is a file, not a folder"):
        make_profile_folders(inbox, ["blocked"], reserved=[])


@pytest.mark.parametrize("make", [lambda tmp: MemoryJobStore(), lambda tmp: SqliteJobStore(Path(tmp) / "j.sqlite3")])
def test_a_job_records_its_profile_and_the_settings_it_ran_with(tmp_path, make):
    store = make(tmp_path)
    config = config_from_mapping(PROFILES).effective("60fps")
    job = store.add(tmp_path / "60fps" / "a.mp4", relpath="60fps/a.mp4", size=1, mtime=1.0, fingerprint="f",
                    profile="60fps")
    plain = store.add(tmp_path / "b.mp4", relpath="b.mp4", size=1, mtime=1.0, fingerprint="g")
    store.set_settings(job.id, settings_json(config.engine, config.output))
    row = store.get(job.id).to_dict()
    assert row["profile"] == "60fps" and store.get(plain.id).to_dict()["profile"] is None
    assert row["settings"]["engine"]["target_fps"] == "60" and row["settings"]["output"]["crf"] == 20
    assert store.get(plain.id).to_dict()["settings"] is None
    json.dumps(row)
    store.close()


def test_the_worker_converts_a_profile_job_with_its_profile_and_fails_one_whose_profile_went(tmp_path):
    from tests.test_worker import Harness

    h = Harness(tmp_path)
    h.config = config_from_mapping({"engine": {"name": "blend"}, "daemon": {"min_free_mb": 0},
                                    "profiles": {"fast": {"engine": {"name": "dis"}, "output": {"codec": "ffv1"}},
                                                 "gone": {}}})

    def drop(relpath: str, profile: str | None) -> int:
        path = h.paths.inbox / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(relpath.encode())
        info = path.stat()
        return h.store.add(path, relpath=relpath, size=info.st_size, mtime=info.st_mtime, fingerprint=relpath,
                           profile=profile).id

    fast, plain, gone = drop("fast/a.mp4", "fast"), drop("b.mp4", None), drop("gone/c.mp4", "gone")
    assert h.worker.run_once() and h.worker.run_once()
    assert [(c["engine"], c["codec"]) for c in h.convert.calls] == [("dis", "ffv1"), ("blend", "auto")]
    assert h.job(fast).output == str(h.paths.outbox / "fast" / "a.50fps.mp4")
    assert json.loads(h.job(fast).settings)["engine"]["name"] == "dis"
    assert json.loads(h.job(plain).settings)["engine"]["name"] == "blend"
    h.config = config_from_mapping({"engine": {"name": "blend"}, "daemon": {"min_free_mb": 0}})  # 'gone' removed
    assert h.worker.run_once()
    job = h.job(gone)
    assert job.state == "failed" and "profile 'gone' is no longer in the config" in job.error
    assert job.path == str(h.paths.failed_dir / "gone" / "c.mp4") and len(h.convert.calls) == 2
    error_file = (h.paths.failed_dir / "gone" / "c.mp4.error.txt").read_text()
    assert "add profiles.gone back" in error_file
