"""atomic_write: the target holds the old content or the new, never a part; a temporary file left by a
crash is never read as the target and never in the next write's way."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from midframe.fs.incoming import is_partial_name
from midframe.fs.names import name_bytes
from midframe.fs.safe_write import atomic_write, atomic_write_by, make_private, temporary_name


def test_replaces_the_content_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "state.json"
    atomic_write(target, "old\n")
    atomic_write(target, b"new\n")
    assert target.read_bytes() == b"new\n" and [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_a_mode_is_given_exactly_whatever_the_umask(tmp_path):
    target = tmp_path / "control.token"
    old = os.umask(0o022)
    try:
        atomic_write(target, "secret", mode=0o600)
        atomic_write(tmp_path / "plain", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o644


def test_errors_are_passed_to_the_encoder(tmp_path):
    atomic_write(tmp_path / "e.txt", "caf\udce9", errors="surrogateescape")
    assert (tmp_path / "e.txt").read_bytes() == b"caf\xe9"


def test_a_writer_that_fails_half_way_leaves_the_old_content_and_no_temporary(tmp_path):
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"old")

    def half(path: Path) -> None:
        path.write_bytes(b"ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write_by(target, half)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_process_killed_while_writing_leaves_the_old_content_and_its_temporary_is_ignored(tmp_path):
    """A real crash: the child dies (os._exit) after half the bytes are in its temporary file."""
    target = tmp_path / "manifest.json"
    atomic_write(target, '{"segments": 1}')
    child = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from midframe.fs.safe_write import atomic_write_by
        def write(path):
            with open(path, "wb") as handle:
                handle.write(b'{{"segm')
                handle.flush()
            os._exit(9)
        atomic_write_by(Path({str(target)!r}), write)
    """)
    done = subprocess.run([sys.executable, "-c", child], env={**os.environ}, check=False)
    assert done.returncode == 9
    assert target.read_text() == '{"segments": 1}'
    [left] = [p for p in tmp_path.iterdir() if p != target]
    assert left.read_bytes() == b'{"segm' and is_partial_name(left.name)   # hidden, .tmp: the watcher skips it
    atomic_write(target, '{"segments": 2}')
    assert target.read_text() == '{"segments": 2}' and left.exists()      # not in the way, never read


def test_temporary_names_are_fresh_hidden_and_fit_a_name_that_takes_all_255_bytes(tmp_path):
    long = tmp_path / ("ü" * 125 + ".txt")
    first, second = temporary_name(long), temporary_name(long)
    assert first != second and first.parent == tmp_path and first.name.startswith(".ü")
    assert name_bytes(first.name) <= 255 and first.name.endswith(".tmp")
    atomic_write(long, "fits")
    assert long.read_text() == "fits"


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_make_private_tightens_only_what_others_can_read(tmp_path):
    folder, file = tmp_path / "state", tmp_path / "jobs.sqlite3"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    file.write_bytes(b"")
    file.chmod(0o400)
    make_private(folder, 0o700)
    make_private(file, 0o600)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(file.stat().st_mode) == 0o400                    # private already: left as it is
