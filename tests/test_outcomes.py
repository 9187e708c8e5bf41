"""The outcome table (midframe.daemon.jobs.outcomes): one test per row, with the engine's real error texts
where they can be had (the real probe on cut files, the real RIFE device check)."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from midframe.daemon.jobs.outcomes import (
    Context,
    SourceFacts,
    backoff_s,
    classify,
    folder_key,
    retry_or_fail,
    speakable,
)
from midframe.errors import (
    ChildFailed,
    ConfigError,
    DeviceError,
    EngineError,
    MediaError,
    OutOfMemory,
    OutputError,
    SourceChanged,
    TransientError,
    WeightsError,
)

ROOT = Path("/videos")
INBOX, OUTBOX, DONE, FAILED = ROOT / "inbox", ROOT / "outbox", ROOT / "done", ROOT / "failed"
WORK = OUTBOX / ".midframe-work"
SOURCE = INBOX / "clip.mp4"
STAGED = WORK / "job-7-result.mp4"
FOLDERS = {"outbox": OUTBOX, "daemon.done_dir": DONE, "daemon.failed_dir": FAILED, "inbox": INBOX}


def ctx(**facts) -> Context:
    return Context(source=SourceFacts(SOURCE, **facts), name="clip.mp4", folders=FOLDERS, work_root=WORK,
                   renames={str(STAGED): "the output of clip.mp4", STAGED.name: "the output of clip.mp4"},
                   stalled_copy_s=60.0)


QUIET = {"changed_ago_s": 3600.0}
RECENT = {"changed_ago_s": 5.0}


def assert_speaks_to_a_person(outcome) -> None:
    text = outcome.text
    assert ".midframe-work" not in text and "job-7-result" not in text, text
    assert not any(name in text for name in ("MediaError", "OutputError", "ConfigError", "TransientError",
                                             "DeviceError", "WeightsError", "EngineError", "OSError", "RuntimeError"))


# --- the source moved under us ---------------------------------------------------------------------


def test_a_vanished_source_ends_the_job():
    outcome = classify(MediaError(SOURCE, "does not exist"), ctx(exists=False))
    assert outcome.kind == "source_gone" and "clip.mp4" in outcome.problem


@pytest.mark.parametrize("facts", [{"changed": True}, {"open_for_writing": True}], ids=["changed", "open"])
def test_a_source_that_moved_or_is_being_written_goes_back_to_settling(facts):
    # Whatever the error: a file that is not the one that settled says nothing about the input.
    for error in (MediaError(SOURCE, "is truncated: its video data ends early", incomplete=True), TransientError("pipe lost"),
                  RuntimeError("boom")):
        outcome = classify(error, ctx(**facts, **QUIET))
        assert outcome.kind == "source_changed", error
        assert outcome.wait_s == 0.0
    assert "still being written" in classify(TransientError("x"), ctx(open_for_writing=True)).problem


def test_a_cut_short_file_modified_recently_is_a_copy_still_arriving():
    outcome = classify(MediaError(SOURCE, "is truncated: its video data ends early (File ended prematurely)",
                                  incomplete=True), ctx(**RECENT))
    assert outcome.kind == "source_changed"
    assert outcome.wait_s == pytest.approx(55.0)
    assert_speaks_to_a_person(outcome)


def test_the_table_reads_attributes_not_words():
    """The same words with other attributes mean another outcome: the text is for people only."""
    words = "is truncated: its video data ends early (File ended prematurely)"
    assert classify(MediaError(SOURCE, words), ctx(**RECENT)).kind == "input"
    assert classify(MediaError(SOURCE, "is odd", incomplete=True), ctx(**RECENT)).kind == "source_changed"
    assert classify(ConfigError("engine.name = 'x': a container cannot hold it", key="engine.backend"),
                    ctx(**QUIET)).key == "engine.backend"
    assert classify(OutputError(OUTBOX, "disk full"), ctx(**QUIET)).resolved_by == "write"
    assert classify(OutputError(OUTBOX, "cannot write it", errno=errno.ENOSPC), ctx(**QUIET)).resolved_by == "space"


@pytest.mark.parametrize("error", [
    ChildFailed("the decoder was killed by signal 9 (SIGKILL)", command="the decoder", signal=9),
    ChildFailed("the encoder made no progress for 120 s and was stopped", command="the encoder", stalled=True,
                stalled_s=120.0),
])
def test_a_child_killed_or_stalled_is_passing_never_the_input(error):
    for facts in (QUIET, RECENT):
        outcome = classify(error, ctx(**facts))
        assert outcome.kind == "transient" and not outcome.internal
        assert outcome.problem == f"converting clip.mp4: {error}"
        assert "tries again" in outcome.advice and "last checkpoint" in outcome.advice
        assert_speaks_to_a_person(outcome)


# --- input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [
    "is truncated: its video data ends early (File ended prematurely)",   # quiet for long: really cut short
    "is not a video file (ffmpeg cannot read it: Invalid data found when processing input)",
    "has no video stream (only audio)",
])
def test_bad_input_fails_with_its_reason(reason):
    outcome = classify(MediaError(SOURCE, reason), ctx(**QUIET))
    assert outcome.kind == "input"
    assert outcome.problem == f"clip.mp4 {reason}"
    assert "copy it again" in outcome.advice
    assert_speaks_to_a_person(outcome)


def test_not_a_video_fails_at_once_even_when_just_copied():
    outcome = classify(MediaError(SOURCE, "is not a video file (ffmpeg cannot read it: unknown format)"), ctx(**RECENT))
    assert outcome.kind == "input"


def test_an_unreadable_source_is_input():
    error = PermissionError(errno.EACCES, "Permission denied", str(SOURCE))
    outcome = classify(error, ctx(**QUIET))
    assert outcome.kind == "input" and "clip.mp4 cannot be read (Permission denied)" in outcome.problem


# --- settings --------------------------------------------------------------------------------------


def test_a_missing_device_is_a_setting(monkeypatch):
    from midframe.engine.interpolators.rife.devices import CudaView, resolve_device

    # The real check, told what a machine without CUDA sees (this one may or may not have a GPU).
    with pytest.raises(DeviceError) as caught:
        resolve_device("cuda", CudaView(available=False, count=0, build=None))
    outcome = classify(caught.value, ctx(**QUIET))
    assert (outcome.kind, outcome.key, outcome.resolved_by) == ("setting", "engine.device", "check")
    assert outcome.problem.startswith("engine.device: cuda") and "no CUDA device" in outcome.problem
    assert_speaks_to_a_person(outcome)


def test_missing_weights_are_a_setting():
    outcome = classify(WeightsError("no RIFE weights installed in /root/.cache/midframe/models"), ctx(**QUIET))
    assert (outcome.kind, outcome.key, outcome.resolved_by) == ("setting", "engine.name", "check")
    assert "midframe models fetch" in outcome.text


@pytest.mark.parametrize(("message", "key"), [
    (f"{STAGED.name}: a .mp4 file cannot hold ffv1 video (Could not find tag for codec ffv1)", "output.container"),
    ("output: codec 'libx246' with pix_fmt 'yuv420p' cannot encode 160x120 video: Unknown encoder 'libx246'",
     "output.codec"),
    ("engine.name = 'nonsense': unknown engine; choose one of rife, dis, blend", "engine.name"),
    ("output.codec (--codec) libx265 writes HEVC video, which a .webm file cannot hold; for .webm use "
     "libvpx-vp9 or libsvtav1, or codec: auto", "output.codec"),
])
def test_codec_container_and_engine_names_are_settings_known_after_another_try(message, key):
    outcome = classify(ConfigError(message, key=key), ctx(**QUIET))
    assert (outcome.kind, outcome.key, outcome.resolved_by) == ("setting", key, "config_change")
    assert outcome.problem.startswith(key) and outcome.problem.count(key) == 1
    assert_speaks_to_a_person(outcome)
    if message.startswith(STAGED.name):
        assert "the output of clip.mp4: a .mp4 file cannot hold ffv1" in outcome.problem


@pytest.mark.parametrize(("error", "key", "words", "resolved_by"), [
    (OutputError(WORK / "job-7", "disk full: no space left on device", errno=errno.ENOSPC), "outbox", "free some space",
     "space"),
    (OutputError(OUTBOX / "clip.50fps.mp4", "cannot write it: Read-only file system"), "outbox", "writable", "write"),
    (OSError(errno.ENOSPC, "No space left on device", str(DONE / "clip.mp4")), "daemon.done_dir", "free some space",
     "space"),
    (PermissionError(errno.EACCES, "Permission denied", str(FAILED / "clip.mp4")), "daemon.failed_dir", "writable",
     "write"),
    (OSError(errno.EROFS, "Read-only file system", str(STAGED)), "outbox", "writable", "write"),
])
def test_unwritable_or_full_folders_are_settings(error, key, words, resolved_by):
    outcome = classify(error, ctx(**QUIET))
    assert (outcome.kind, outcome.key, outcome.resolved_by) == ("setting", key, resolved_by)
    assert outcome.problem.startswith(f"{key} ({FOLDERS[key]})") and words in outcome.advice
    assert_speaks_to_a_person(outcome)


@pytest.mark.parametrize("error", [
    TransientError(f"ffmpeg failed encoding {WORK / 'job-7' / 'seg-0003.mkv'} (exit code 1): Read-only file system"),
    OSError(errno.EIO, "Input/output error"),
    RuntimeError("anything at all"),
    OutputError(STAGED, "cannot write it: Permission denied"),
])
def test_an_outbox_that_fails_a_write_test_afterwards_is_the_problem_whatever_the_error(error):
    context = Context(source=SourceFacts(SOURCE, **QUIET), name="clip.mp4", folders=FOLDERS, work_root=WORK,
                      unwritable={"outbox": "Read-only file system"})
    outcome = classify(error, context)
    assert (outcome.kind, outcome.key, outcome.resolved_by, outcome.internal) == ("setting", "outbox", "write", False)
    assert outcome.problem == f"outbox ({OUTBOX}) cannot be written (Read-only file system)"
    assert "resumes by itself" in outcome.advice
    assert_speaks_to_a_person(outcome)
    # The input's own faults stay the input's.
    assert classify(MediaError(SOURCE, "is not a video"), context).kind == "input"


def test_a_source_changed_during_the_conversion_ends_the_job_as_changed():
    error = SourceChanged(SOURCE, "was replaced by another file")
    outcome = classify(error, ctx(changed=True, **QUIET))
    assert outcome.kind == "changed" and outcome.problem == "clip.mp4 was replaced by another file while it was converted"
    assert "new job" in outcome.advice
    assert classify(error, ctx(exists=False)).kind == "source_gone"


# --- transient -------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [
    TransientError(f"ffmpeg failed writing {WORK / 'job-7' / 'seg-0003.mkv'} (exit code 1): Broken pipe"),
    OutOfMemory("cpu ran out of memory interpolating 3840x2160 frames with RIFE even one pair at a time"),
    EngineError("the rife engine failed: out of range"),
    subprocess.TimeoutExpired(["ffmpeg"], 30),
    MediaError(STAGED, "is truncated: its video data ends early", incomplete=True),  # our own output, not the input
    OSError(errno.EIO, "Input/output error"),
])
def test_crashes_memory_and_hung_children_are_transient(error):
    outcome = classify(error, ctx(**QUIET))
    assert outcome.kind == "transient" and not outcome.internal
    assert_speaks_to_a_person(outcome)
    if isinstance(error, TransientError):
        assert "ffmpeg failed writing midframe's work files (exit code 1)" in outcome.problem


def test_anything_unexpected_is_an_internal_error_retried():
    outcome = classify(KeyError("frames_total"), ctx(**QUIET))
    assert outcome.kind == "transient" and outcome.internal and "internal error" in outcome.problem
    assert_speaks_to_a_person(outcome)


def test_backoff_grows_and_attempts_run_out():
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    assert backoff_s(50) == 15 * 60.0
    assert [retry_or_fail(n, 3) for n in (1, 2, 3, 4)] == ["retry", "retry", "fail", "fail"]


# --- the helpers -----------------------------------------------------------------------------------


def test_speakable_and_folder_keys():
    text = f"cannot write {STAGED}: {WORK / 'job-7' / 'manifest.json'} is busy"
    assert speakable(text, work_root=WORK, renames={str(STAGED): "the output"}) == \
        "cannot write the output: midframe's work files is busy"
    nested = {"outbox": OUTBOX, "inner": OUTBOX / "sub"}
    assert folder_key(OUTBOX / "sub" / "a.mp4", nested) == "inner"
    assert folder_key(OUTBOX / "a.mp4", nested) == "outbox"
    assert folder_key(Path("/elsewhere/a.mp4"), nested) is None and folder_key(None, nested) is None


@pytest.fixture(scope="module")
def cut_files(tmp_path_factory):
    from tests.media import make_clip

    folder = tmp_path_factory.mktemp("cut")
    files = {}
    for suffix in (".mp4", ".mkv"):
        whole = make_clip(folder / f"whole{suffix}", seconds=1.0, size="96x64")
        data = whole.read_bytes()
        files[f"half{suffix}"] = folder / f"half{suffix}"
        files[f"half{suffix}"].write_bytes(data[: len(data) // 2])
    files["empty.mkv"] = folder / "empty.mkv"
    files["empty.mkv"].write_bytes(b"")
    files["text.mkv"] = folder / "text.mkv"
    files["text.mkv"].write_text("a shopping list, not a video\n" * 40)
    return files


def test_the_real_probe_verdicts_on_cut_short_files_look_incomplete(cut_files):
    """Pins what midframe's probe really says about a copy cut short: incomplete, and a text file is not."""
    from midframe.engine.ffmpeg import find_ffmpeg
    from midframe.engine.probe import probe

    verdicts = {}
    for name, path in cut_files.items():
        with pytest.raises(MediaError) as caught:
            probe(path, ffmpeg=find_ffmpeg())
        verdicts[name] = caught.value
    assert all(verdicts[name].incomplete for name in ("half.mp4", "half.mkv", "empty.mkv")), verdicts
    assert not verdicts["text.mkv"].incomplete, verdicts
