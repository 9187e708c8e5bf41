"""The real daemon (``midframe watch`` in a subprocess, tests/daemon_process.py) against files that
change under it, names too long for the file system, folders that overlap, a second daemon on the
inbox, and an outbox that turns read-only or full mid-job.

One daemon serves the identity scenarios in turn (module-scoped); the output-problem scenario has its
own, whose outbox is a small tmpfs (to fill) with a read-only bind mount laid over it mid-job: root
writes through permission bits, and a read-only mount is what a full or read-only disk really gives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from midframe.fs.identity import FINGERPRINT_CHUNK, Fingerprint
from tests.daemon_process import ROOT, DaemonProcess, sha256, wait_for
from tests.media import ffmpeg_exe, make_clip, probe_json, psnr, read_frames
from tests.mounts import can_mount, mount

pytestmark = pytest.mark.slow

SIZE = "160x96"


def frames(path: Path) -> int:
    return int(next(s for s in probe_json(path)["streams"] if s["codec_type"] == "video")["nb_read_frames"])


def durations(path: Path) -> dict[str, float]:
    """Each stream's duration, as ffprobe reads it (counted frames for video)."""
    info = probe_json(path)
    found = {}
    for stream in info["streams"]:
        if stream["codec_type"] == "video":
            found["video"] = int(stream["nb_read_frames"]) * float(eval(stream["avg_frame_rate"])) ** -1
        elif stream["codec_type"] == "audio":
            found["audio"] = float(stream.get("duration") or info["format"]["duration"])
    return found


def job_named(daemon: DaemonProcess, name: str, *, state: str | None = None) -> list[dict]:
    return [job for job in daemon.jobs() if job["name"] == name and (state is None or job["state"] == state)]


def wait_converting(daemon: DaemonProcess, name: str) -> dict:
    """Until the job of ``name`` has made its first frames."""
    return wait_for(lambda: next((job for job in job_named(daemon, name, state="running") if job["frames_done"]),
                                 None), timeout=60, step=0.02, what=f"{name} to be under way")


def final_jobs(daemon: DaemonProcess, name: str, count: int) -> list[dict]:
    def ended() -> list[dict] | None:
        jobs = job_named(daemon, name)
        return jobs if len(jobs) >= count and all(j["state"] in ("done", "failed", "cancelled") for j in jobs) else None

    return wait_for(ended, timeout=120, step=0.1, what=f"{count} finished jobs for {name}")


def copy_in(daemon: DaemonProcess, source: Path, name: str) -> Path:
    """Copied under a hidden name, then renamed into place: the watcher sees it whole at once."""
    hidden = daemon.inbox / ".incoming.tmp"
    shutil.copyfile(source, hidden)
    target = daemon.inbox / name
    os.replace(hidden, target)
    return target


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    daemon = DaemonProcess(tmp_path_factory.mktemp("identity") / "run", {
        "output": {"codec": "libx264", "preset": "ultrafast"},
        "daemon": {"on_success": "delete", "settle_seconds": 0.5},
    })
    daemon.start()
    yield daemon
    daemon.stop_if_running()


# --- identity -------------------------------------------------------------------------------------


def raw_twins(media: Path) -> tuple[Path, Path]:
    """Two rawvideo files of the same size whose first and last MiB are equal (black lead-in and
    lead-out) and whose middles differ: the quick fingerprint cannot tell them apart."""
    first = media / "twin-a.mkv"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"color=black:s={SIZE}:r=25:d=5",
                    "-f", "lavfi", "-i", f"testsrc2=s={SIZE}:r=25:d=5",
                    "-filter_complex", "[0][1]overlay=enable='between(t,2,3)'", "-fflags", "+bitexact",
                    "-c:v", "rawvideo", "-pix_fmt", "yuv420p", str(first)], check=True)
    packets = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_packets", "-of", "json", str(first)],
                                        check=True, capture_output=True).stdout)["packets"]
    data = bytearray(first.read_bytes())
    for packet in packets[55:70]:                      # frames of the test pattern, in the middle
        # Inside each frame's pixels only (a margin off the container's block headers either side).
        start, end = int(packet["pos"]) + 64, int(packet["pos"]) + int(packet["size"]) - 64
        data[start:end] = bytes(255 - value for value in data[start:end])
    second = media / "twin-b.mkv"
    second.write_bytes(bytes(data))
    return first, second


def test_two_files_sharing_size_head_and_tail_are_both_converted(daemon, media):
    first, second = raw_twins(media)
    a, b = first.read_bytes(), second.read_bytes()
    assert len(a) == len(b) > 2 * FINGERPRINT_CHUNK and a[:FINGERPRINT_CHUNK] == b[:FINGERPRINT_CHUNK]
    assert a[-FINGERPRINT_CHUNK:] == b[-FINGERPRINT_CHUNK:] and Fingerprint.of(first) == Fingerprint.of(second)
    assert sha256(first) != sha256(second) and frames(first) == frames(second) == 125
    copy_in(daemon, first, first.name)
    copy_in(daemon, second, second.name)
    jobs = {job["name"]: job for job in final_jobs(daemon, first.name, 1) + final_jobs(daemon, second.name, 1)}
    for job in jobs.values():
        assert job["state"] == "done" and job["duplicate_of"] is None, job
    # Each output is made from its own source: its middle frame matches that source's, not the other's.
    source_frames = {name: read_frames(media / name)[62] for name in jobs}
    for name, job in jobs.items():
        made = read_frames(Path(job["output"]))
        assert len(made) == 2 * 125
        other = next(n for n in jobs if n != name)
        assert psnr(made[124], source_frames[name]) > 28 > 15 > psnr(made[124], source_frames[other]), name
    assert not (daemon.inbox / first.name).exists() and not (daemon.inbox / second.name).exists()  # delete


def test_a_file_replaced_mid_job_is_never_mixed_and_its_new_content_is_converted(daemon, media):
    old = make_clip(media / "old.mkv", seconds=4, size=SIZE, source="testsrc2")
    new = make_clip(media / "new.mkv", seconds=2, size=SIZE, source="smptebars")
    copy_in(daemon, old, "swap.mkv")
    wait_converting(daemon, "swap.mkv")
    daemon.client().pause()                            # held between two batches, mid-job
    copy_in(daemon, new, "swap.mkv")
    daemon.client().resume()
    jobs = final_jobs(daemon, "swap.mkv", 2)
    assert [job["state"] for job in jobs] == ["cancelled", "done"], jobs
    assert "swap.mkv was replaced by another file while it was converted" in jobs[0]["error"]
    assert jobs[0]["output"] is None and jobs[0]["error"].endswith(f"its new content is job {jobs[1]['id']}")
    output = Path(jobs[1]["output"])
    assert [name for name in daemon.visible_outputs() if name.startswith("swap")] == [output.name]
    assert frames(output) == 2 * frames(new)
    lengths, source = durations(output), durations(new)
    assert abs(lengths["video"] - source["video"]) < 0.05 and abs(lengths["audio"] - source["audio"]) < 0.1, lengths
    assert psnr(read_frames(output)[0], read_frames(new)[0]) > 30 > psnr(read_frames(output)[0], read_frames(old)[0])


def test_a_recording_that_grows_mid_job_is_converted_whole_once_it_stops(daemon, media):
    whole = make_clip(media / "rec.ts", seconds=5, size=SIZE, extra_output_args=["-f", "mpegts"])
    data = whole.read_bytes()
    cut = (len(data) * 3 // 5) // 188 * 188            # at a transport-stream packet boundary
    target = daemon.inbox / "rec.ts"
    target.write_bytes(data[:cut])                       # closed: a writer elsewhere, as it looks from here
    wait_converting(daemon, "rec.ts")
    daemon.client().pause()
    with open(target, "ab") as handle:
        handle.write(data[cut:])
    daemon.client().resume()
    jobs = final_jobs(daemon, "rec.ts", 2)
    assert [job["state"] for job in jobs] == ["cancelled", "done"], jobs
    assert f"rec.ts grew from {cut} to {len(data)} bytes while it was converted" in jobs[0]["error"]
    output = Path(jobs[1]["output"])
    assert frames(output) == 2 * frames(whole)
    lengths, source = durations(output), durations(whole)
    assert abs(lengths["video"] - source["video"]) < 0.05 and abs(lengths["audio"] - source["audio"]) < 0.1, lengths


def test_a_recording_held_open_for_writing_is_never_claimed_until_it_is_closed(daemon, media):
    whole = make_clip(media / "held.ts", seconds=3, size=SIZE, extra_output_args=["-f", "mpegts"])
    data = whole.read_bytes()
    step = len(data) // 3 // 188 * 188
    with open(daemon.inbox / "held.ts", "wb") as handle:
        for start in (0, step, 2 * step):
            handle.write(data[start:start + step] if start < 2 * step else data[start:])
            handle.flush()
            time.sleep(0.8)                              # longer than settle_seconds, with the file open
            assert job_named(daemon, "held.ts") == []
    jobs = final_jobs(daemon, "held.ts", 1)
    assert [job["state"] for job in jobs] == ["done"] and frames(Path(jobs[0]["output"])) == 2 * frames(whole)
    assert "held.ts: another program still has it open for writing; waiting" in daemon.log()


def test_a_twin_of_a_file_whose_output_was_damaged_is_converted_afresh(daemon, media):
    """Issue 19, finding 5: the twin failed every attempt, "the converted video did not read back"."""
    clip = make_clip(media / "twin.mkv", seconds=1, size=SIZE)
    copy_in(daemon, clip, "dup-a.mkv")
    [first] = final_jobs(daemon, "dup-a.mkv", 1)
    made = Path(first["output"])
    damaged = made.read_bytes()[: made.stat().st_size // 2]
    made.write_bytes(damaged)                          # cut in half, as a crashed copy leaves it
    copy_in(daemon, clip, "dup-b.mkv")
    [twin] = final_jobs(daemon, "dup-b.mkv", 1)
    assert (twin["state"], twin["duplicate_of"], twin["error"]) == ("done", None, None), twin
    assert frames(Path(twin["output"])) == 2 * frames(clip) and made.read_bytes() == damaged
    copy_in(daemon, clip, "dup-c.mkv")                 # the twin's output stands: shared, not converted
    [again] = final_jobs(daemon, "dup-c.mkv", 1)
    assert (again["state"], again["duplicate_of"]) == ("done", twin["id"]), again
    assert os.path.samefile(again["output"], twin["output"])
    assert f"its output {made} is truncated" in daemon.log()


def test_a_250_byte_name_converts(daemon, media):
    name = "Aufnahme " + "é" * 116 + " ende.mkv"       # 9 + 232 + 9 bytes
    assert len(name.encode()) == 250
    clip = make_clip(media / "long.mkv", seconds=1, size=SIZE)
    copy_in(daemon, clip, name)
    [job] = final_jobs(daemon, name, 1)
    assert job["state"] == "done", job
    output = Path(job["output"])
    assert output.parent == daemon.outbox and len(output.name.encode()) <= 255 - 7
    assert output.name.startswith("Aufnahme éé") and output.name.endswith(".50fps.mkv") and "~" in output.name
    assert frames(output) == 2 * frames(clip)
    assert not (daemon.inbox / name).exists() and not daemon.failed.exists()


# --- folders at start-up --------------------------------------------------------------------------


def watch(config: dict, path: Path) -> subprocess.CompletedProcess:
    import yaml

    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "midframe", "watch", "--config", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_an_outbox_equal_to_the_inbox_or_a_second_daemon_on_the_inbox_is_refused(daemon, tmp_path):
    same = dict(daemon.config, outbox=daemon.config["inbox"], daemon={**daemon.config["daemon"],
                                                                    "state_dir": str(tmp_path / "state")})
    done = watch(same, tmp_path / "same.yaml")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"midframe: error: inbox and outbox are the same folder ({daemon.inbox}), and what midframe puts there would "
        f"be taken for new videos and converted again; give each its own folder, e.g. {daemon.inbox / 'inbox'} "
        f"and {daemon.inbox / 'outbox'}"]
    assert not (tmp_path / "state").exists()

    second = dict(daemon.config, outbox=str(tmp_path / "out2"), daemon={
        **daemon.config["daemon"], "state_dir": str(tmp_path / "state2"), "done_dir": str(tmp_path / "done2"),
        "failed_dir": str(tmp_path / "failed2")})
    done = watch(second, tmp_path / "second.yaml")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "midframe: error:" in line]
    assert line.startswith(f"midframe: error: another midframe daemon (pid {daemon.proc.pid}, state dir "
                           f"{daemon.state}) watches {daemon.inbox}; two daemons would convert every file twice")
    assert daemon.status()["state"] in ("idle", "working")              # the first one is untouched


# --- output problems ------------------------------------------------------------------------------


def test_an_outbox_that_turns_read_only_or_full_mid_job_pauses_and_resumes_by_itself(tmp_path, media):
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and can_mount(tmp_path)):
        pytest.skip("needs root with mount (a tmpfs outbox and a read-only bind mount over it); the worker "
                    "tests cover the same routes with an injected write test")
    daemon = DaemonProcess(tmp_path / "run", {"output": {"codec": "libx264", "preset": "ultrafast"},
                                              "resume": {"segment_frames": 24}})
    daemon.outbox.mkdir()
    mount("-t", "tmpfs", "-o", "size=24m", "tmpfs", str(daemon.outbox))
    overlaid = False
    try:
        daemon.start()
        clip = make_clip(media / "steady.mkv", seconds=4, size=SIZE)
        copy_in(daemon, clip, "ro.mkv")
        wait_converting(daemon, "ro.mkv")
        mount("--bind", str(daemon.outbox), str(daemon.outbox))       # the outbox turns read-only
        mount("-o", "remount,bind,ro", str(daemon.outbox))
        overlaid = True
        paused = wait_for(lambda: (s := daemon.status())["state"] == "paused" and s, timeout=60, what="a pause")
        assert paused["paused_reason"].startswith(f"outbox ({daemon.outbox}) cannot be written (Read-only file system)")
        assert paused["failed"] == 0 and (daemon.inbox / "ro.mkv").exists() and not daemon.failed.exists()
        [job] = job_named(daemon, "ro.mkv")
        assert job["state"] == "queued" and job["attempts"] == 0
        subprocess.run(["umount", str(daemon.outbox)], check=True)      # writable again: nothing else is done
        overlaid = False
        [job] = final_jobs(daemon, "ro.mkv", 1)
        assert job["state"] == "done" and frames(Path(job["output"])) == 2 * frames(clip)
        assert daemon.status()["paused_reason"] is None and (daemon.done / "ro.mkv").exists()

        # Full: a file takes the rest of the outbox's disk mid-job, then is deleted.
        clip = make_clip(media / "bars.mkv", seconds=4, size=SIZE, source="smptebars")
        copy_in(daemon, clip, "full.mkv")
        wait_converting(daemon, "full.mkv")
        filler = daemon.outbox / "filler.bin"
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * (1 << 20))
                    handle.flush()
            except OSError:
                pass                                                   # the disk is full
        paused = wait_for(lambda: (s := daemon.status())["state"] == "paused" and s, timeout=60, what="a pause")
        assert paused["paused_reason"].startswith(f"outbox ({daemon.outbox}): disk full"), paused
        filler.unlink()
        [job] = final_jobs(daemon, "full.mkv", 1)
        assert job["state"] == "done" and frames(Path(job["output"])) == 2 * frames(clip)
        assert not daemon.failed.exists() and "resumed" in daemon.log()
    finally:
        daemon.stop_if_running()
        if overlaid:
            subprocess.run(["umount", str(daemon.outbox)], check=False)
        subprocess.run(["umount", "-l", str(daemon.outbox)], check=False)
