"""Bad input through `python3 -m midframe interpolate`: one line naming the file and the reason, exit
code 2, nothing at the output path, the input untouched, no work folder left behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.media import make_clip
from tests.privileges import can_drop_capabilities, without_override

ROOT = Path(__file__).resolve().parents[1]


def _fingerprint(path: Path) -> tuple:
    if not path.exists():
        return ()
    stat = path.stat()
    data = path.read_bytes() if path.is_file() else b""
    return stat.st_mtime_ns, stat.st_mode, hashlib.sha256(data).hexdigest()


def run_cli(source: Path, output: Path, *extra: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(prefix or []), sys.executable, "-m", "midframe", "interpolate", str(source), "-o", str(output),
           "--engine", "blend", "-q", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def assert_refused(source: Path, output: Path, reason: str, *extra: str, prefix: list[str] | None = None,
                   named: Path | None = None) -> None:
    before = _fingerprint(source)
    done = run_cli(source, output, *extra, prefix=prefix)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("midframe: error: "), done.stderr
    assert str(named or source) in lines[0] and reason in lines[0], lines[0]
    assert not output.exists() or output == source
    assert _fingerprint(source) == before
    if output.parent.is_dir():
        assert not [p for p in output.parent.iterdir() if "midframe" in p.name], list(output.parent.iterdir())


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("good") / "good.mp4", seconds=1.0, fps="25", size="160x120")


def test_not_a_video(tmp_path):
    source = tmp_path / "notes.mp4"
    source.write_text("shopping list\n" * 100, encoding="utf-8")
    assert_refused(source, tmp_path / "out.mp4", "is not a video file")


def test_zero_bytes(tmp_path):
    source = tmp_path / "empty.mkv"
    source.write_bytes(b"")
    assert_refused(source, tmp_path / "out.mkv", "is empty (0 bytes)")


def test_truncated(good, tmp_path):
    source = tmp_path / "cut.mp4"
    source.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert_refused(source, tmp_path / "out.mp4", "truncated")


def test_no_video_stream(good, tmp_path):
    source = tmp_path / "song.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(good), "-vn", "-c", "copy", str(source)], check=True)
    assert_refused(source, tmp_path / "out.mp4", "has no video stream")


def test_missing(tmp_path):
    assert_refused(tmp_path / "nowhere.mp4", tmp_path / "out.mp4", "does not exist")


@pytest.mark.skipif(not can_drop_capabilities(), reason="cannot take away root's read override here")
def test_unreadable(good, tmp_path):
    source = tmp_path / "locked.mp4"
    shutil.copyfile(good, source)
    source.chmod(0)
    prefix = without_override()
    assert_refused(source, tmp_path / "out.mp4", "permission denied", prefix=prefix)


@pytest.mark.skipif(not can_drop_capabilities(), reason="cannot take away root's write override here")
def test_output_folder_not_writable(good, tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    prefix = without_override()
    assert_refused(good, folder / "out.mp4", "not writable", prefix=prefix, named=folder)


def test_output_folder_missing(good, tmp_path):
    assert_refused(good, tmp_path / "no" / "out.mp4", "does not exist", named=tmp_path / "no")


def test_output_is_the_input(good, tmp_path):
    source = tmp_path / "same.mp4"
    shutil.copyfile(good, source)
    assert_refused(source, source, "is the input file")


def test_output_exists(good, tmp_path):
    output = tmp_path / "taken.mp4"
    output.write_bytes(b"mine")
    done = run_cli(good, output)
    assert done.returncode == 2 and "already exists" in done.stderr and output.read_bytes() == b"mine"


@pytest.fixture()
def tiny_disk(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); disk full is not simulated")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full(good, tiny_disk):
    output = tiny_disk / "out.mkv"
    assert_refused(good, output, "disk full", "--codec", "ffv1", "--pix-fmt", "gbrp", named=output)
    assert list(tiny_disk.iterdir()) == []
