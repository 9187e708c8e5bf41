"""The render farm for real: a Dask scheduler and two ``midframe farm worker`` processes on localhost,
a daemon coordinating them, a 40 s clip dropped in its inbox with lossless output.

A worker SIGKILLed while it makes a segment: the segment is made again by the other, the output is
frame-identical to a single-machine run. The daemon SIGKILLed mid-job and restarted: it submits only
the segments not already made.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.daemon_process import DaemonProcess, wait_for
from tests.farm_cluster import Cluster
from tests.media import make_clip, psnr, read_frames

pytestmark = pytest.mark.slow

SEGMENT_FRAMES = 200  # 10 segments of 4 s of output
SETTINGS = {
    "engine": {"name": "blend", "factor": 2, "batch_size": 4},
    "output": {"codec": "ffv1", "pix_fmt": "gbrp"},
    "resume": {"enabled": True, "segment_frames": SEGMENT_FRAMES},
}
SUBMITTED = re.compile(r"job-(\d+): segment (\d+)\.\.(\d+) submitted")


@pytest.fixture(scope="module")
def clip_and_reference(tmp_path_factory):
    """A 40 s clip (1000 frames, 2000 out) and its single-machine conversion with the same settings."""
    from midframe.config import config_from_mapping
    from midframe.engine.ffmpeg import find_ffmpeg
    from midframe.engine.interpolators import create_interpolator
    from midframe.engine.pipeline import convert

    folder = tmp_path_factory.mktemp("farm-media")
    clip = make_clip(folder / "film.mkv", seconds=40, size="160x90", extra_output_args=["-g", "50"])
    config = config_from_mapping(SETTINGS)
    reference = folder / "reference.mkv"
    convert(clip, reference, work_dir=folder / "work", engine=config.engine, output=config.output,
            resume=config.resume, make_interpolator=lambda s: create_interpolator(s, models_dir=folder),
            ffmpeg=find_ffmpeg())
    return clip, read_frames(reference)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    found = Cluster(tmp_path_factory.mktemp("cluster"), delay_s=0.03)
    try:
        found.start_scheduler()
        found.start_worker(wait=False)
        found.start_worker(wait=False)
        for worker in found.workers:
            wait_for(lambda worker=worker: "ready" in worker.log(), timeout=90, what=f"a farm worker ({worker.log_path})")
        yield found
    finally:
        found.stop()


def farm_daemon(root: Path, cluster: Cluster) -> DaemonProcess:
    return DaemonProcess(root, {**SETTINGS, "farm": {"scheduler": cluster.address}})


def wait_farm_ready(daemon: DaemonProcess, workers: int) -> None:
    wait_for(lambda: (daemon.status()["farm"] or {}).get("workers") == workers, timeout=60,
             what=f"the daemon to see {workers} farm workers: {daemon.status()}")


def finished_job(daemon: DaemonProcess, timeout: float) -> dict:
    def done():
        jobs = daemon.jobs()
        assert not any(job["state"] == "failed" for job in jobs), jobs
        return jobs[0] if jobs and jobs[0]["state"] == "done" else None
    return wait_for(done, timeout=timeout, step=0.5, what=f"the job to finish:\n{daemon.log()[-3000:]}")


def recorded(work_dir: Path) -> set[int]:
    try:
        manifest = json.loads((work_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return set()
    return {segment["start"] for segment in manifest["segments"]}


def submitted(log: str) -> list[int]:
    return [int(found.group(2)) for found in SUBMITTED.finditer(log)]


def test_pause_submits_nothing_new_and_cancel_stops_the_running_segments(tmp_path, cluster, clip_and_reference):
    clip, _ = clip_and_reference
    daemon = farm_daemon(tmp_path / "d", cluster).start()
    try:
        wait_farm_ready(daemon, 2)
        shutil.copy(clip, daemon.inbox / clip.name)
        wait_for(lambda: len(submitted(daemon.log())) >= 3, timeout=120, step=0.05, what="segments to be submitted")
        daemon.client().pause()
        held = len(submitted(daemon.log()))
        time.sleep(4)  # what was out finishes; nothing new goes out
        assert len(submitted(daemon.log())) == held and daemon.status()["state"] == "paused"
        daemon.client().resume()
        wait_for(lambda: any(w.segments_started() > w.segments_made() + w.log().count("stopped by the coordinator")
                             for w in cluster.workers), timeout=60, step=0.02, what="a segment to be in flight")
        daemon.client().cancel(1)
        wait_for(lambda: daemon.jobs()[0]["state"] == "cancelled", timeout=60, what="the job to be cancelled")
        wait_for(lambda: any("stopped by the coordinator" in w.log() for w in cluster.workers), timeout=30,
                 what="a running segment to stop")
        started = sum(w.segments_started() for w in cluster.workers)
        time.sleep(3)
        assert sum(w.segments_started() for w in cluster.workers) == started  # nothing more was made
        assert not (daemon.outbox / ".midframe-work" / "job-1").exists()
    finally:
        daemon.stop_if_running()


def test_the_coordinator_killed_mid_job_submits_only_what_is_missing(tmp_path, cluster, clip_and_reference):
    clip, reference = clip_and_reference
    daemon = farm_daemon(tmp_path / "d", cluster).start()
    work = daemon.outbox / ".midframe-work" / "job-1"
    try:
        wait_farm_ready(daemon, 2)
        shutil.copy(clip, daemon.inbox / clip.name)
        wait_for(lambda: len(recorded(work)) >= 3, timeout=120, step=0.05, what="three segments to be made")
        daemon.kill()
        made_before = recorded(work)
        first_run = submitted(daemon.log())
        assert 3 <= len(made_before) < 10, made_before
        daemon.start()
        job = finished_job(daemon, timeout=180)
        second_run = submitted(daemon.log())
    finally:
        daemon.stop_if_running()
    assert not set(second_run) & made_before, (made_before, second_run)
    assert len(second_run) == len(set(second_run)) and set(first_run) | set(second_run) == set(range(0, 2000, 200))
    assert "was made before the restart; keeping it" in daemon.log() or set(second_run) == set(range(0, 2000, 200)) - made_before
    assert np.array_equal(read_frames(Path(job["output"])), reference)
    assert sum(job["workers"].values()) == 10, job["workers"]  # each segment made and counted once


def test_a_worker_killed_mid_segment_changes_nothing(tmp_path, cluster, clip_and_reference):
    clip, reference = clip_and_reference
    daemon = farm_daemon(tmp_path / "d", cluster).start()
    try:
        wait_farm_ready(daemon, 2)
        shutil.copy(clip, daemon.inbox / clip.name)
        victim, survivor = cluster.workers
        busy = wait_for(lambda: (daemon.status()["farm"] or {}).get("busy", 0) >= 1 and daemon.status()["farm"],
                        timeout=60, step=0.1, what="the farm to be busy")
        # Killed once it has finished a segment and is making the next one.
        def victim_in_flight():
            made = victim.segments_made()
            if made < 1 or victim.segments_started() <= made:
                return None
            row = daemon.jobs()[0]
            return row if row.get("workers", {}).get(victim.address, 0) >= 1 else None
        running = wait_for(victim_in_flight, timeout=120, step=0.02, what=f"worker 0 to be making a segment:\n{victim.log()}")
        victim.kill()
        job = finished_job(daemon, timeout=180)
        status = daemon.status()
    finally:
        daemon.stop_if_running()
    assert busy["scheduler"] == cluster.address and busy["connected"] and busy["problem"] is None
    assert running["state"] == "running", running
    output = Path(job["output"])
    frames = read_frames(output)
    assert frames.shape == reference.shape and np.array_equal(frames, reference)
    workers = job["workers"]
    assert set(workers) == {victim.address, survivor.address}, workers
    assert sum(workers.values()) == 10 and workers[victim.address] >= 1
    assert status["farm"]["workers"] == 1  # the killed one is gone from the farm


def test_a_worker_that_cannot_see_the_share_takes_no_more_tasks(tmp_path, cluster):
    """Runs after the kill test: one good worker left, and one whose path_map points nowhere. Two
    files dropped: with farm.max_jobs 2 both are converted at once."""
    live = [worker for worker in cluster.workers if worker.proc.poll() is None]
    daemon = farm_daemon(tmp_path / "d", cluster)
    blind = cluster.start_worker({"farm": {"path_map": {str(tmp_path): str(tmp_path / "not-mounted")}}})
    clips = [make_clip(tmp_path / f"short{n}.mkv", seconds=12, size="160x90", extra_output_args=["-g", "50"])
             for n in (1, 2)]
    daemon.start()
    try:
        wait_farm_ready(daemon, len(live) + 1)
        for clip in clips:
            shutil.copy(clip, daemon.inbox / clip.name)
        wait_for(lambda: [job["state"] for job in daemon.jobs()] == ["running", "running"], timeout=60, step=0.05,
                 what="both jobs to run at once")
        wait_for(lambda: "takes no more tasks" in blind.log(), timeout=120, step=0.1,
                 what=f"the blind worker to be given a segment:\n{blind.log()}")
        wait_for(lambda: [job["state"] for job in daemon.jobs()] == ["done", "done"], timeout=180, step=0.5,
                 what=f"both jobs to finish:\n{daemon.log()[-3000:]}")
        jobs, status = daemon.jobs(), daemon.status()
    finally:
        daemon.stop_if_running()
    assert f"cannot see the shared folder: {tmp_path / 'not-mounted'}" in blind.log()
    assert "set farm.path_map in this worker's config" in daemon.log()  # its error reached the coordinator
    for job in jobs:
        assert blind.address not in job["workers"] and sum(job["workers"].values()) == 3, job["workers"]
    assert status["farm"]["workers"] == len(live)  # its slots are 0 now: no longer counted
    assert blind.proc.poll() is None  # alive, but idle
    blind.kill()


def test_a_worker_that_reads_another_file_of_the_same_size_makes_none_of_its_segments(tmp_path, cluster):
    """Issue 19, finding 8: a worker whose farm.path_map points at another file of the same size made
    segments from it, and the wrong video was published as a success. Now it refuses (naming its
    path_map), the job's segments go to the good worker, and the output is made from the real source."""
    live = [worker for worker in cluster.workers if worker.proc.poll() is None]
    daemon = farm_daemon(tmp_path / "d", cluster)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    clips = [make_clip(tmp_path / f"same{n}.mkv", seconds=12, size="160x90", extra_output_args=["-g", "50"])
             for n in (1, 2)]
    for clip in clips:                                   # the same name and size, another video
        other = make_clip(elsewhere / clip.name, seconds=12, size="160x90", source="smptebars")
        data = other.read_bytes()[: clip.stat().st_size]
        other.write_bytes(data + b"\0" * (clip.stat().st_size - len(data)))
        assert other.stat().st_size == clip.stat().st_size
    misled = cluster.start_worker({"farm": {"path_map": {str(daemon.inbox): str(elsewhere)}}})
    daemon.start()
    try:
        wait_farm_ready(daemon, len(live) + 1)
        for clip in clips:
            shutil.copy(clip, daemon.inbox / clip.name)
        wait_for(lambda: "reads another file" in misled.log(), timeout=120, step=0.1,
                 what=f"the misled worker to be given a segment:\n{misled.log()}")
        wait_for(lambda: [job["state"] for job in daemon.jobs()] == ["done", "done"], timeout=180, step=0.5,
                 what=f"both jobs to finish:\n{daemon.log()[-3000:]}")
        jobs, status = daemon.jobs(), daemon.status()
    finally:
        daemon.stop_if_running()
    assert f"farm.path_map maps {daemon.inbox} to {elsewhere} on this worker" in misled.log()
    assert "its segments go to other workers" in daemon.log()
    assert misled.segments_made() == 0
    for job in jobs:
        assert misled.address not in job["workers"] and sum(job["workers"].values()) == 3, job["workers"]
        source = read_frames(next(clip for clip in clips if clip.name == job["name"]))
        made = read_frames(Path(job["output"]))
        assert len(made) == 2 * len(source)
        assert all(psnr(made[2 * k], source[k]) > 35 for k in (0, len(source) // 2, len(source) - 1))
    assert status["farm"]["workers"] == len(live) + 1 and misled.proc.poll() is None  # fit for other jobs
    misled.kill()


def test_a_worker_without_the_engine_refuses_to_start(tmp_path, cluster):
    worker = cluster.start_worker({"engine": {"name": "rife", "device": "cpu"}}, wait=False,
                                  env={"XDG_CACHE_HOME": str(tmp_path / "empty-cache")})
    assert worker.proc.wait(60) == 2
    assert "midframe: error:" in worker.log() and "midframe models fetch" in worker.log()


def test_the_scheduler_gone_pauses_the_queue_until_it_is_back(tmp_path, cluster):
    """Runs last: the scheduler is killed and started again on its port; the workers come back by
    themselves, and so does the daemon."""
    live = [worker for worker in cluster.workers if worker.proc.poll() is None]
    daemon = farm_daemon(tmp_path / "d", cluster).start()
    try:
        wait_farm_ready(daemon, len(live))
        cluster.kill_scheduler()
        away = wait_for(lambda: (lambda s: s if not s["farm"]["connected"] and s["paused_reason"] else None)(
            daemon.status()), timeout=60, what="the daemon to see the scheduler gone")
        reason = away["paused_reason"]
        assert away["state"] == "paused" and reason.startswith("farm.scheduler:") and cluster.address in reason
        assert away["farm"]["problem"].startswith("farm.scheduler:")
        clip = make_clip(tmp_path / "while-away.mkv", seconds=4, size="160x90")
        shutil.copy(clip, daemon.inbox / clip.name)
        wait_for(lambda: daemon.jobs(), timeout=30, what="the file to be queued")
        time.sleep(3)
        assert daemon.jobs()[0]["state"] == "queued" and daemon.jobs()[0]["attempts"] == 0
        cluster.start_scheduler()
        job = finished_job(daemon, timeout=180)
        status = wait_for(lambda: (lambda s: s if s["farm"]["workers"] == len(live) else None)(daemon.status()),
                          timeout=30, what="the daemon to count the workers again")
    finally:
        daemon.stop_if_running()
    assert status["paused_reason"] is None and status["farm"]["connected"]
    assert sum(job["workers"].values()) == 1 and all("lost the scheduler" in w.log() for w in live)
