"""The farm's pure parts: path mapping (Windows and POSIX), slots and resources, errors across the wire,
the farm: config section, the segment grid."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from midframe.config import FarmConfig, config_from_mapping
from midframe.engine.ranges import segment_ranges
from midframe.errors import ConfigError, MediaError, OutputError, TransientError, WeightsError
from midframe.farm.paths import is_windows_path, map_path, mapping_said
from midframe.farm.remote import FarmTaskError, from_remote, to_remote
from midframe.farm.slots import SLOT, slot_devices, task_resources, worker_resources


@pytest.mark.parametrize(
    ("path", "path_map", "expected"),
    [
        # a POSIX coordinator, a Windows worker that has the share as Z:
        ("/mnt/nas/outbox/.midframe-work/job-3", {"/mnt/nas": "Z:\\"}, "Z:\\outbox\\.midframe-work\\job-3"),
        ("/mnt/nas", {"/mnt/nas": "Z:\\"}, "Z:\\"),
        ("/mnt/nas/a b/c.mp4", {"/mnt/nas/": "Z:"}, "Z:\\a b\\c.mp4"),
        # a Windows coordinator, a Linux worker: drive letters and separators in any case or style
        ("D:\\Videos\\inbox\\film.mkv", {"d:/videos": "/srv/videos"}, "/srv/videos/inbox/film.mkv"),
        ("D:/Videos/inbox/film.mkv", {"D:\\Videos\\": "/srv/videos"}, "/srv/videos/inbox/film.mkv"),
        # UNC shares
        ("\\\\nas\\media\\outbox\\x.mp4", {"\\\\NAS\\media": "/mnt/media"}, "/mnt/media/outbox/x.mp4"),
        ("/mnt/media/outbox/x.mp4", {"/mnt/media": "\\\\nas\\media"}, "\\\\nas\\media\\outbox\\x.mp4"),
        # POSIX paths are case-sensitive, and only whole components match
        ("/mnt/NAS/x", {"/mnt/nas": "Z:\\"}, "/mnt/NAS/x"),
        ("/mnt/nasty/x", {"/mnt/nas": "Z:\\"}, "/mnt/nasty/x"),
        # the longest matching folder wins, whatever the order of the map
        ("/mnt/nas/fast/x", {"/mnt/nas": "/a", "/mnt/nas/fast": "/b"}, "/b/x"),
        ("/mnt/nas/fast/x", {"/mnt/nas/fast": "/b", "/mnt/nas": "/a"}, "/b/x"),
        # unmapped: the same path on both sides
        ("/srv/share/x", {}, "/srv/share/x"),
        ("/srv/share/x", {"/mnt/nas": "Z:\\"}, "/srv/share/x"),
    ],
)
def test_map_path(path, path_map, expected):
    assert map_path(path, path_map) == expected


def test_a_segment_counts_only_when_its_record_names_the_source_by_content(tmp_path):
    """Issue 19, finding 8: the coordinator keeps a segment only when its worker read the same file
    (size and the hashes of its first and last MiB), whatever its mtime; the refusal names the mapping."""
    from dataclasses import asdict, replace

    from midframe.farm.renderer import _made_from
    from midframe.fs.identity import Fingerprint

    source, other = tmp_path / "a.mkv", tmp_path / "b.mkv"
    source.write_bytes(b"A" * (3 << 20))
    other.write_bytes(b"A" * (2 << 20) + b"B" * (1 << 20))              # same size and head, another tail
    expected = Fingerprint.of(source)
    assert _made_from({"source": {**asdict(expected), "mtime_ns": 1}}, expected) is None  # a record that has one
    assert _made_from({"source": asdict(Fingerprint.of(other))}, expected) == (
        "was made from another file (it differs in its last MiB)")
    assert _made_from({}, expected) == "its record does not say which file it was made from"
    assert expected.content_change(replace(expected, size=5)) == f"has 5 bytes, not {3 << 20}"
    assert mapping_said("/mnt/nas/in/a.mkv", {"/mnt/nas": "/srv/copy"}) == (
        "farm.path_map maps /mnt/nas to /srv/copy on this worker")
    assert mapping_said("/mnt/nas/in/a.mkv", {}).startswith("no entry of farm.path_map covers it")


def test_windows_path_detection():
    assert is_windows_path("C:\\x") and is_windows_path("c:/x") and is_windows_path("\\\\srv\\share")
    assert not is_windows_path("/mnt/c:") and not is_windows_path("relative/x")


@pytest.mark.parametrize(
    ("device", "cuda", "expected"),
    [("auto", 0, ["cpu"]), ("auto", 2, ["cuda:0", "cuda:1"]), ("cuda", 3, ["cuda:0", "cuda:1", "cuda:2"]),
     ("cuda:1", 2, ["cuda:1"]), ("cpu", 4, ["cpu"]), ("mps", 0, ["mps"])],
)
def test_slot_devices(device, cuda, expected):
    assert slot_devices(device, cuda_count=cuda) == expected


def test_resources_advertised_and_asked_for():
    assert worker_resources(["cpu"], {}) == {SLOT: 1.0}
    assert worker_resources(["cuda:0", "cuda:1"], {"fast": 1}) == {SLOT: 2.0, "GPU": 2.0, "fast": 1.0}
    assert worker_resources(["cuda:0"], {SLOT: 2}) == {SLOT: 2.0, "GPU": 1.0}  # two segments on one big GPU
    assert task_resources({}) == {SLOT: 1.0}
    assert task_resources({"GPU": 1}) == {SLOT: 1.0, "GPU": 1.0}


def test_errors_survive_pickling_and_come_back_as_what_they_were():
    media = to_remote(MediaError(Path("/share/in/a.mp4"), "is truncated"), worker="tcp://10.0.0.2:4000")
    back = pickle.loads(pickle.dumps(media))
    assert isinstance(back, FarmTaskError) and back.worker == "tcp://10.0.0.2:4000" and not back.unfit
    rebuilt = from_remote(back)
    assert isinstance(rebuilt, MediaError) and rebuilt.path == Path("/share/in/a.mp4")
    assert "is truncated" in rebuilt.reason and "tcp://10.0.0.2:4000" in rebuilt.reason

    assert isinstance(from_remote(to_remote(OutputError("/share/out", "disk full"), worker="w")), OutputError)
    weights = from_remote(pickle.loads(pickle.dumps(to_remote(WeightsError("no RIFE weights"), worker="w"))))
    assert isinstance(weights, WeightsError) and "no RIFE weights" in str(weights)
    # Not a midframe error: a transient one, with the original type named for the log.
    other = from_remote(to_remote(ZeroDivisionError("x"), worker="w"))
    assert isinstance(other, TransientError) and "ZeroDivisionError" in str(other)


def test_what_the_outcome_table_reads_crosses_from_a_worker():
    """The table reads attributes, not text: they come back from a worker as they were."""
    import errno as errnos

    from midframe.errors import ChildFailed

    def across(error):
        return from_remote(pickle.loads(pickle.dumps(to_remote(error, worker="w"))))

    assert across(MediaError("/in/a.mp4", "is truncated", incomplete=True)).incomplete
    assert not across(MediaError("/in/a.mp4", "is not a video")).incomplete
    assert across(OutputError("/out", "disk full", errno=errnos.ENOSPC)).errno == errnos.ENOSPC
    assert across(ConfigError("cannot encode", key="output.codec")).key == "output.codec"
    child = across(ChildFailed("the decoder was killed by signal 9 (SIGKILL)", command="the decoder", signal=9))
    assert isinstance(child, ChildFailed) and (child.signal, child.command, child.stalled) == (9, "the decoder", False)
    unfit = pickle.loads(pickle.dumps(FarmTaskError("TransientError", "no share", worker="w", unfit=True)))
    assert unfit.unfit and str(unfit) == "on farm worker w: no share"


def test_farm_config_defaults_and_checks():
    assert config_from_mapping({}).farm == FarmConfig()
    farm = config_from_mapping({"farm": {"scheduler": "tcp://192.168.1.10:8786", "path_map": {"/mnt/nas": "Z:\\"},
                                         "resources": {"GPU": 1}, "max_jobs": 3, "fallback_local": True}}).farm
    assert farm.scheduler == "tcp://192.168.1.10:8786" and farm.path_map == {"/mnt/nas": "Z:\\"}
    assert config_from_mapping({"farm": {"scheduler": "tcp://[::1]:8786"}}).farm.scheduler == "tcp://[::1]:8786"
    for bad, key in [({"scheduler": "192.168.1.10"}, "farm.scheduler"), ({"scheduler": "tcp://h:0"}, "farm.scheduler"),
                     ({"scheduler": "http://h:80"}, "farm.scheduler"), ({"scheduler": "tls://h:8786"}, "farm.scheduler"),
                     ({"max_jobs": 0}, "farm.max_jobs"),
                     ({"resources": {"GPU": -1}}, "farm.resources"), ({"path_map": {"/a": ""}}, "farm.path_map"),
                     ({"workers": 2}, "unknown key 'farm.workers'")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            config_from_mapping({"farm": bad}, source="cfg.yaml")


def test_segment_grid():
    assert segment_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert segment_ranges(8, 4) == [(0, 4), (4, 8)]
    assert segment_ranges(3, 10) == [(0, 3)]


def test_tray_status_line_counts_the_farm_workers():
    from midframe.tray.view import view_from_status

    base = {"state": "idle", "current": None, "queued": 2, "done": 0, "failed": 0, "paused_reason": None}
    assert view_from_status({**base, "farm": None}).status_line == "Idle · 2 queued"
    farm = {"scheduler": "tcp://nas:8786", "workers": 3, "busy": 2, "connected": True, "problem": None}
    assert view_from_status({**base, "farm": farm}).status_line == "Idle · 2 queued · 3 farm workers"
    one = view_from_status({**base, "farm": {**farm, "workers": 1}})
    assert one.status_line.endswith("· 1 farm worker") and "1 farm worker" in one.tooltip
    away = {**farm, "workers": 0, "connected": False, "problem": "farm.scheduler: tcp://nas:8786 does not answer"}
    assert view_from_status({**base, "state": "paused", "farm": away}).status_line == "Paused · 2 queued · farm offline"


def test_status_sentence_names_the_farm():
    from midframe.sentences import status_sentence

    base = {"state": "working", "current": None, "queued": 1, "done": 2, "failed": 0, "paused_reason": None}
    assert "farm" not in status_sentence({**base, "farm": None})
    farm = {"scheduler": "tcp://nas:8786", "workers": 2, "busy": 1, "connected": True, "problem": None}
    assert status_sentence({**base, "farm": farm}).endswith("\n  farm tcp://nas:8786: 2 workers, 1 busy")
    away = {**farm, "workers": 0, "busy": 0, "connected": False, "problem": "farm.scheduler: gone"}
    assert status_sentence({**base, "farm": away}).endswith("0 workers, 0 busy (farm.scheduler: gone)")
