"""The settings check with its real probes: ffmpeg trial encodes, the engine registry, real folders;
and the config source that refuses a reload the check finds broken."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from midframe.config import Paths, config_from_mapping
from midframe.daemon.jobs.settings_check import SettingsCheck
from midframe.daemon.settings import ConfigSource
from midframe.engine.ffmpeg import find_ffmpeg
from tests.engine_helpers import missing_cuda_device


@pytest.fixture
def paths(tmp_path) -> Paths:
    root = tmp_path
    return Paths(inbox=root / "inbox", outbox=root / "outbox", state_dir=root / "state", done_dir=root / "done",
                 failed_dir=root / "failed", log_dir=root / "logs", cache_dir=root / "empty-cache")


@pytest.fixture
def check(paths) -> SettingsCheck:
    return SettingsCheck.real(paths, ffmpeg=find_ffmpeg())


def config(**sections):
    return config_from_mapping({"engine": {"name": "blend"}, **sections})


def test_good_settings_pass_and_leave_nothing_behind(check, paths):
    assert check(config(output={"preset": "ultrafast"})) == []
    assert check(config(output={"codec": "ffv1", "pix_fmt": "gbrp", "container": "mkv"})) == []
    assert [p.name for p in (paths.outbox / ".midframe-work").iterdir()] == []
    assert not paths.done_dir.exists()                       # checked where it would be made, not made


@pytest.mark.parametrize(("output", "start", "words"), [
    ({"codec": "libx246"}, "output.codec = 'libx246'", "Unknown encoder 'libx246'"),
    ({"codec": "libx264", "pix_fmt": "rgb0x"}, "output.codec = 'libx264'", "pix_fmt 'rgb0x'"),
    ({"codec": "ffv1", "container": "mp4"}, "output.codec (--codec) ffv1", "which a .mp4 file cannot hold"),
    ({"codec": "ffv1", "container": "flv"}, "output.codec (--codec) ffv1", "which a .flv file cannot hold"),
    ({"codec": "ffv1", "container": "ogg"}, "output.container = 'ogg'", "a .ogg file cannot hold ffv1"),
])
def test_an_encoder_or_container_that_cannot_work_is_named(check, output, start, words):
    problems = check(config(output=output))
    assert len(problems) == 1 and problems[0].startswith(start) and words in problems[0], problems
    assert ".midframe-work" not in problems[0] and ".check-" not in problems[0]


def test_codec_auto_is_not_checked_without_a_source(check):
    assert check(config(output={"codec": "auto"})) == []


def test_a_chosen_engine_must_be_there_a_default_may_fall_back(check):
    problems = check(config_from_mapping({"engine": {"name": "rife"}}))
    assert len(problems) == 1 and problems[0].startswith("engine.name: ") and "midframe models fetch" in problems[0]
    assert check(config_from_mapping({"output": {"preset": "ultrafast"}})) == []   # default rife: dis instead


def test_a_missing_device_is_named(rife_weights, paths):
    real = SettingsCheck.real(Paths(**{**paths.__dict__, "cache_dir": rife_weights.parent}), ffmpeg=find_ffmpeg())
    device = missing_cuda_device()
    problems = real(config_from_mapping({"engine": {"name": "rife", "device": device}}))
    assert len(problems) == 1 and problems[0].startswith(f"engine.device: {device}: not available"), problems


def test_a_folder_that_cannot_be_written_is_named(check, paths, tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    broken = SettingsCheck.real(Paths(**{**paths.__dict__, "failed_dir": blocker / "failed"}), ffmpeg=find_ffmpeg())
    problems = broken(config())
    assert len(problems) == 1 and problems[0].startswith(f"daemon.failed_dir ({blocker / 'failed'}): cannot be written")


def test_a_reload_the_check_refuses_keeps_the_last_good_config(check, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("engine: {name: blend}\n")
    refused: list[str] = []
    works = [True]
    now = [0.0]
    source = ConfigSource(path, config_from_mapping({"engine": {"name": "blend"}}), vet=check,
                          in_force_works=lambda: works[0], on_refused=refused.append, clock=lambda: now[0])
    path.write_text("engine: {name: blend}\noutput: {codec: libx246}\n")
    os.utime(path, ns=(1, 1))
    assert source.refresh().output.codec == "auto"            # refused: the good one stays
    assert len(refused) == 1 and "output.codec = 'libx246'" in refused[0]
    now[0] = 20.0
    assert source.refresh().output.codec == "auto" and len(refused) == 1      # vetted again, said once
    works[0] = False                                           # the config in force cannot work either
    path.write_text("engine: {name: blend}\noutput: {codec: libx247}\n")
    os.utime(path, ns=(2, 2))
    assert source.refresh().output.codec == "libx247"         # then the newer one is taken
    path.write_text("engine: {name: dis}\n")
    os.utime(path, ns=(3, 3))
    assert source.refresh().engine.name == "dis" and len(refused) == 1
    assert Path(path).exists()


def test_a_refused_reload_is_taken_once_what_it_needs_arrives(tmp_path):
    """`engine.name: rife` refused for want of weights, then `midframe models fetch` (here: the check
    passing) without the file changing: the edit is taken at the next look."""
    path = tmp_path / "config.yaml"
    path.write_text("engine: {name: blend}\n")
    problems = [["engine.name: the engine needs its model weights"]]
    now = [0.0]
    source = ConfigSource(path, config_from_mapping({"engine": {"name": "blend"}}), vet=lambda c: problems[0],
                          clock=lambda: now[0], retry_s=15.0)
    path.write_text("engine: {name: rife}\n")
    os.utime(path, ns=(1, 1))
    assert source.refresh().engine.name == "blend"
    problems[0] = []
    now[0] = 10.0
    assert source.refresh().engine.name == "blend"            # not looked at again yet
    now[0] = 16.0
    assert source.refresh().engine.name == "rife"
