"""Names that do not fit the file system: outputs, numbering, done/failed moves and error files are
shortened on a character boundary, keeping the extension and a tag that keeps them apart. Real files
on the real file system (its limit from os.pathconf); smaller limits as plain values."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from midframe.config import Config, Paths, config_from_mapping
from midframe.daemon.jobs.finishing import Finisher
from midframe.daemon.jobs.naming import output_name
from midframe.daemon.store.memory import MemoryJobStore
from midframe.fs import names, publish
from midframe.fs.names import NUMBER_ROOM, cut_to_bytes, fit_name, name_bytes


def long_name(total: int, extension: str = ".mp4") -> str:
    """A name of exactly ``total`` bytes, mostly two-byte letters."""
    body = "ü" * ((total - len(extension)) // 2)
    return body + "x" * ((total - len(extension)) % 2) + extension


def test_cuts_fall_between_characters_and_never_split_an_accent():
    assert cut_to_bytes("ééé", 5) == "éé"
    assert cut_to_bytes("ab\u0301cd", 2) == "a"            # b and its combining accent stay together
    assert cut_to_bytes("ab\u0301cd", 4) == "ab\u0301"
    surrogate = os.fsdecode(b"caf\xe9")                     # a name that is not UTF-8, as the OS gave it
    assert name_bytes(surrogate) == 4 and cut_to_bytes(surrogate, 4) == surrogate


def test_output_names_fit_with_room_for_numbering_and_keep_what_the_pattern_adds():
    output = Config().output
    source = Path(long_name(250))
    name = output_name(source, output=output, fps_out=Fraction(50), factor=2, engine="blend", limit=255)
    assert name_bytes(name) <= 255 - NUMBER_ROOM and name.endswith(".50fps.mp4")
    stem = name.removesuffix(".50fps.mp4")
    assert stem[-9] == "~" and source.stem.startswith(stem[:-9])
    other = Path(long_name(248)[:-4] + "zz.mp4")            # the same start, a different end
    assert output_name(other, output=output, fps_out=Fraction(50), factor=2, engine="blend", limit=255) != name
    short = Path("clip.mp4")
    assert output_name(short, output=output, fps_out=Fraction(50), factor=2, engine="blend", limit=255) == "clip.50fps.mp4"
    assert name_bytes(output_name(source, output=output, fps_out="50", factor=2, engine="x", limit=143)) <= 143 - 7
    custom = output.model_copy(update={"name": "{stem}-{stem}{ext}"})
    twice = output_name(source, output=custom, fps_out="50", factor=2, engine="x", limit=255)
    assert name_bytes(twice) <= 255 - NUMBER_ROOM and twice.endswith(".mp4")


def test_numbering_refits_the_name_and_keeps_its_extension():
    name = long_name(255)
    assert name_bytes(names.numbered(name, 1, 255)) == 255
    second = names.numbered(name, 2, 255)
    assert name_bytes(second) <= 255 and second.endswith(" (2).mp4")
    assert names.numbered("clip.mp4", 3, 255) == "clip (3).mp4" and names.numbered("clip.mp4", 3) == "clip (3).mp4"
    assert fit_name("no-extension-" + "a" * 300, 100).startswith("no-extension-")


def test_long_names_on_the_real_file_system(tmp_path):
    limit = names.name_limit(tmp_path)
    assert limit == os.pathconf(tmp_path, "PC_NAME_MAX") and names.name_limit(tmp_path / "not" / "yet") == limit
    folder = tmp_path / "done"
    name = long_name(limit)
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_bytes(b"1")
    second.write_bytes(b"2")
    placed = [publish.move_no_clobber(first, folder, name), publish.move_no_clobber(second, folder, name)]
    assert placed[0].name == name and placed[1].name.endswith(" (2).mp4")
    assert [p.read_bytes() for p in placed] == [b"1", b"2"]
    assert publish.find_link(placed[1], folder, name) == placed[1]
    copy = publish.link_or_copy(placed[0], folder, name)
    assert copy.name.endswith(" (3).mp4") and os.path.samefile(copy, placed[0])


def test_a_failed_input_with_a_long_name_gets_its_error_file_beside_it(tmp_path):
    paths = Paths(inbox=tmp_path / "inbox", outbox=tmp_path / "outbox", state_dir=tmp_path / "state",
                  done_dir=tmp_path / "done", failed_dir=tmp_path / "failed", log_dir=tmp_path / "logs",
                  cache_dir=tmp_path / "cache")
    paths.inbox.mkdir()
    store = MemoryJobStore()
    name = long_name(names.name_limit(tmp_path) - 2)
    source = paths.inbox / name
    source.write_bytes(b"not a video")
    job = store.add(source, relpath=name, size=11, mtime=source.stat().st_mtime, fingerprint="f")
    store.claim()
    failed = Finisher(store, paths, ffmpeg=None).fail(job, problem="is not a video", advice="check it",
                                                      config=config_from_mapping({}))
    moved = Path(failed.path)
    assert moved.parent == paths.failed_dir and moved.read_bytes() == b"not a video" and moved.suffix == ".mp4"
    error_file = moved.with_name(moved.name + ".error.txt")
    assert "is not a video" in error_file.read_text()
    assert sorted(p.name for p in paths.failed_dir.iterdir()) == sorted([moved.name, error_file.name])
