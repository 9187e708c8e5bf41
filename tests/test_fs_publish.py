"""publish: a complete file takes its name only if nobody has it, atomically, with hard links and
without them (a link refused as FAT, SMB or some FUSE mounts refuse it); the moves built on it."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from midframe.engine.workdir import move_into_place
from midframe.errors import OutputError
from midframe.fs.publish import move_aside, publish, publish_numbered

RACERS = 8


def _no_links(source: Path, target: Path) -> None:
    raise OSError(errno.EPERM, "Operation not permitted")


LINKS = pytest.mark.parametrize("link", [os.link, _no_links], ids=["hard links", "no hard links"])


def _temps(folder: Path, count: int) -> list[Path]:
    temps = []
    for number in range(count):
        temp = folder / f".temp-{number}.part"
        temp.write_bytes(f"writer {number}".encode())
        temps.append(temp)
    return temps


@LINKS
def test_publish_gives_the_name_and_drops_the_temporary(tmp_path, link):
    [temp] = _temps(tmp_path, 1)
    publish(temp, tmp_path / "clip.mp4", link=link)
    assert (tmp_path / "clip.mp4").read_bytes() == b"writer 0" and not temp.exists()


@LINKS
def test_publish_never_overwrites(tmp_path, link):
    [temp] = _temps(tmp_path, 1)
    (tmp_path / "clip.mp4").write_bytes(b"the user's own file")
    with pytest.raises(FileExistsError):
        publish(temp, tmp_path / "clip.mp4", link=link)
    assert (tmp_path / "clip.mp4").read_bytes() == b"the user's own file" and temp.read_bytes() == b"writer 0"


@LINKS
def test_racing_writers_one_wins_the_others_are_told(tmp_path, link):
    temps = _temps(tmp_path, RACERS)
    final = tmp_path / "clip.mp4"
    start = threading.Barrier(RACERS)
    outcomes: dict[int, str] = {}

    def race(number: int) -> None:
        start.wait()
        try:
            publish(temps[number], final, link=link)
        except FileExistsError:
            outcomes[number] = "taken"
        else:
            outcomes[number] = "won"

    threads = [threading.Thread(target=race, args=(number,)) for number in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [winner] = [number for number, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == RACERS and final.read_bytes() == f"writer {winner}".encode()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".temp-")) == sorted(
        temps[number].name for number in range(RACERS) if number != winner)   # the losers' files are theirs


@LINKS
def test_racing_numbered_writers_each_get_a_name_of_their_own(tmp_path, link):
    temps = _temps(tmp_path, RACERS)
    start = threading.Barrier(RACERS)
    placed: list[Path] = []

    def race(number: int) -> None:
        start.wait()
        placed.append(publish_numbered(temps[number], tmp_path, "clip.mp4", link=link))

    threads = [threading.Thread(target=race, args=(number,)) for number in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.name for p in placed) == sorted(["clip.mp4", *(f"clip ({n}).mp4" for n in range(2, RACERS + 1))])
    assert sorted(p.read_bytes() for p in placed) == sorted(f"writer {n}".encode() for n in range(RACERS))


def test_keep_leaves_a_second_name(tmp_path):
    [temp] = _temps(tmp_path, 1)
    publish(temp, tmp_path / "clip.mp4", keep=True)
    assert os.path.samefile(temp, tmp_path / "clip.mp4")


def test_another_failure_is_passed_on_with_the_temporary_kept(tmp_path):
    [temp] = _temps(tmp_path, 1)

    def other_disk(source: Path, target: Path) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    with pytest.raises(OSError) as raised:
        publish(temp, tmp_path / "clip.mp4", link=other_disk)
    assert raised.value.errno == errno.EXDEV and temp.exists() and not (tmp_path / "clip.mp4").exists()


def test_interpolate_never_overwrites_a_file_that_appeared_meanwhile(tmp_path):
    """``midframe interpolate -o`` checks the name at its start; a file made there during the hours of
    the conversion stays as it is, and the result waits in the work folder."""
    joined = tmp_path / "work" / "joined.mkv"
    joined.parent.mkdir()
    joined.write_bytes(b"the result")
    destination = tmp_path / "out.mkv"
    destination.write_bytes(b"made by another program meanwhile")
    with pytest.raises(OutputError, match="already exists; not overwriting it"):
        move_into_place(joined, destination)
    assert destination.read_bytes() == b"made by another program meanwhile" and joined.read_bytes() == b"the result"
    destination.unlink()
    move_into_place(joined, destination)
    assert destination.read_bytes() == b"the result" and not joined.exists()


def test_move_aside_with_companions_never_over_anything(tmp_path):
    db = tmp_path / "jobs.sqlite3"
    for suffix, data in (("", b"db"), ("-wal", b"wal")):
        Path(f"{db}{suffix}").write_bytes(data)
    now = 1_700_000_000.0
    first = move_aside(db, "corrupt", now=now, companions=("-wal", "-shm"))
    assert first.read_bytes() == b"db" and Path(f"{first}-wal").read_bytes() == b"wal" and not db.exists()
    db.write_bytes(b"db 2")
    second = move_aside(db, "corrupt", now=now, companions=("-wal", "-shm"))
    assert second.name == f"{first.name}-2" and second.read_bytes() == b"db 2" and first.read_bytes() == b"db"
