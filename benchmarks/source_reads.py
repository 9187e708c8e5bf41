"""How many times one job reads its source: bytes read from the source file, per process and stage.

Runs real conversions under ``strace`` (every ``read``/``pread64``/``readv``/``preadv`` of every
process and thread, with the file each descriptor names) and adds up the bytes read from the source
path, by what read them: the midframe process itself (its whole-file hash, fingerprints and header
checks), and each ffmpeg/ffprobe child, named by its command line (header, packet scan, trial mux,
decode, join, ...). The page cache does not change these figures: they are what the processes ask
for, which is what a network share has to send when the file is bigger than the cache.

Two paths: a job through a real daemon (``midframe watch``; it also hashes the whole file for
duplicate detection) and the one-shot ``midframe interpolate``. The source is Big Buck Bunny re-encoded
at a high bitrate (so that it is far bigger than the 1 MiB fingerprints) with its 6-channel AAC kept,
as .mp4 and as .mkv: MP4's demuxer skips the bytes of streams nobody asked for, Matroska's reads them.

    python benchmarks/source_reads.py                      # blend engine (the reads do not depend on it)
    python benchmarks/source_reads.py --engine auto        # auto decodes once more to choose per scene
    python benchmarks/source_reads.py --containers mp4 --paths daemon
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.daemon_process import DaemonProcess  # noqa: E402
from tests.footage import bigbuckbunny  # noqa: E402
from tests.media import ffmpeg_exe  # noqa: E402

STRACE = shutil.which("strace") or "/usr/bin/strace"
TRACED = "execve,read,pread64,readv,preadv,clone,clone3,vfork,fork"
_READ = re.compile(r"^(?:read|pread64|readv|preadv)\((\d+)<([^>]*)>.*\)\s+=\s+(\d+)")
_EXEC = re.compile(r'^execve\("([^"]*)", \[(.*?)\](?:, 0x[0-9a-f]+ /\* \d+ vars \*/)?\) = 0')
_CLONE = re.compile(r"^(?:clone|clone3|vfork|fork)\(.*\)\s+=\s+(\d+)")


def strace_prefix(trace_dir: Path) -> list[str]:
    return [STRACE, "-f", "-ff", "-qq", "-s", "600", "-e", f"trace={TRACED}", "-e", "signal=none", "-y",
            "-o", str(trace_dir / "t")]


def make_source(folder: Path, container: str, frames: int) -> Path:
    """Big Buck Bunny at 1280x720, high bitrate (about 0.2 MB a frame), its audio copied."""
    out = folder / f"source.{container}"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(bigbuckbunny()), "-map", "0:v:0", "-map", "0:a",
                    "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "6",
                    "-c:a", "copy", str(out)], check=True)
    return out


def stage_of(argv: list[str]) -> str:
    """What a child process is, from its command line."""
    name = Path(argv[0]).name if argv else "?"
    text = " ".join(argv)
    if name.startswith("python") or "midframe" in text and name not in ("ffmpeg", "ffprobe"):
        return "midframe process (whole-file hash, fingerprints, header checks)"
    if name == "ffprobe":
        if "-show_frames" in argv:
            return "ffprobe: first frame's side data"
        if "packet=" in text:
            selected = argv[argv.index("-select_streams") + 1] if "-select_streams" in argv else "all"
            return f"ffprobe: packet scan (streams {selected})"
        return "ffprobe: header"
    if name == "ffmpeg":
        if "concat" in argv:
            return "ffmpeg: join (segments + source streams)"
        if "framecrc" in argv:
            return "ffmpeg: packet scan (framecrc)"
        if "rawvideo" in argv:
            return "ffmpeg: decode"
        if "-t" in argv:
            return "ffmpeg: trial mux of the streams (1 s)"
        if len([a for a in argv if a == "-i"]) == 1 and argv.count("-hide_banner") and len(argv) <= 6:
            return "ffmpeg: header"
        return "ffmpeg: other (" + " ".join(argv[1:8]) + " ...)"
    return name


def parse_traces(trace_dir: Path, source_names: set[str]) -> list[tuple[str, int, int]]:
    """(stage, runs, bytes read from a path whose name is in ``source_names``), per stage."""
    parents: dict[int, int] = {}
    reads: dict[int, int] = defaultdict(int)
    execs: dict[int, list[str]] = {}
    for path in trace_dir.iterdir():
        tid = int(path.name.rsplit(".", 1)[1])
        for line in path.read_text(errors="replace").splitlines():
            match = _READ.match(line)
            if match:
                if Path(match.group(2)).name in source_names:
                    reads[tid] += int(match.group(3))
                continue
            match = _CLONE.match(line)
            if match:
                parents[int(match.group(1))] = tid
                continue
            match = _EXEC.match(line)
            if match:
                execs[tid] = re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(2)) or [match.group(1)]

    def label(tid: int) -> tuple[str, int]:
        """(stage, the process that exec'd it) of a thread or process."""
        seen = tid
        while seen not in execs and seen in parents:
            seen = parents[seen]
        argv = execs.get(seen, ["?"])
        return stage_of(argv), seen

    totals: dict[str, int] = defaultdict(int)
    runs: dict[str, set[int]] = defaultdict(set)
    for tid, count in reads.items():
        stage, process = label(tid)
        totals[stage] += count
        runs[stage].add(process)
    return sorted(((stage, len(runs[stage]), totals[stage]) for stage in totals), key=lambda row: -row[2])


def run_daemon(source: Path, folder: Path, engine: str) -> Path:
    trace_dir = folder / "trace-daemon"
    trace_dir.mkdir()

    class Traced(DaemonProcess):
        def start(self, **kwargs):  # type: ignore[no-untyped-def]
            self.runs += 1
            self.stderr_path = self.root / f"daemon-{self.runs}.log"
            self.proc = subprocess.Popen(
                [*strace_prefix(trace_dir), sys.executable, "-m", "midframe", "watch", "--config",
                 str(self.config_path)],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(self.stderr_path, "wb"), start_new_session=True,  # noqa: SIM115
            )
            from tests.daemon_process import wait_for

            wait_for(self._answers, timeout=120, what=f"the daemon to answer (log: {self.stderr_path})")
            return self

        def _answers(self) -> bool:  # the daemon is strace's child: its pid is not proc's
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.client().status()
            except Exception:  # noqa: BLE001 - not up yet
                return False
            return True

    daemon = Traced(folder / "daemon", {"engine": {"name": engine}, "logging": {"level": "WARNING"}})
    daemon.start()
    try:
        shutil.copy(source, daemon.root / source.name)
        os.replace(daemon.root / source.name, daemon.inbox / source.name)
        jobs = daemon.wait_jobs_final(1, timeout=900)
        if jobs[0]["state"] != "done":
            raise SystemExit(f"the job did not finish: {jobs[0]}\n{daemon.log()}")
        daemon.client().stop()
        daemon.wait_exit(60)
    finally:
        daemon.stop_if_running()
    return trace_dir


def run_oneshot(source: Path, folder: Path, engine: str) -> Path:
    trace_dir = folder / "trace-oneshot"
    trace_dir.mkdir()
    out = folder / f"oneshot-out{source.suffix}"
    subprocess.run([*strace_prefix(trace_dir), sys.executable, "-m", "midframe", "interpolate", str(source), "-o",
                    str(out), "--engine", engine, "--preset", "ultrafast", "-q"],
                   cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return trace_dir


def table(rows: list[tuple[str, int, int]], size: int) -> str:
    lines = ["| stage / process | runs that read it | bytes read from the source | x file size |", "|---|---:|---:|---:|"]
    for stage, runs, count in rows:
        lines.append(f"| {stage} | {runs} | {count:,} | {count / size:.2f} |")
    total = sum(count for _, _, count in rows)
    lines.append(f"| **total** | | **{total:,}** | **{total / size:.2f}** |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="blend")
    parser.add_argument("--containers", default="mp4,mkv")
    parser.add_argument("--paths", default="daemon,interpolate")
    parser.add_argument("--frames", type=int, default=132)
    args = parser.parse_args()
    if not Path(STRACE).exists():
        raise SystemExit("needs strace")
    with tempfile.TemporaryDirectory(prefix="midframe-reads-") as tmp:
        folder = Path(tmp)
        for container in args.containers.split(","):
            source = make_source(folder, container, args.frames)
            size = source.stat().st_size
            for path in args.paths.split(","):
                work = folder / f"{container}-{path}"
                work.mkdir()
                runner = run_daemon if path == "daemon" else run_oneshot
                trace_dir = runner(source, work, args.engine)
                rows = parse_traces(trace_dir, {source.name})
                print(f"\n{path}, .{container} source of {size / 2**20:.1f} MiB ({args.frames} frames 1280x720, "
                      f"6-channel AAC), engine {args.engine}:\n")
                print(table(rows, size), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
