"""The CLI reaches the daemon whatever the config file holds: the pointer file a running daemon writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from midframe.api import locate
from midframe.config import Config, resolve_paths
from tests.daemon_process import ROOT, DaemonProcess, wait_for


def test_the_order_is_config_then_record_then_default(tmp_path):
    pointer = tmp_path / "xdg" / locate.POINTER_FILE
    good = tmp_path / "good.yaml"
    good.write_text(f"daemon: {{state_dir: {tmp_path / 'from-config'}}}\n", encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("daemon: {state_dir: [unclosed\n", encoding="utf-8")

    assert locate.locate_state_dir(good, pointer=pointer) == locate.Location(tmp_path / "from-config", "config")
    fallback = locate.locate_state_dir(broken, pointer=pointer)
    assert fallback.source == "default" and fallback.state_dir == resolve_paths(Config()).state_dir
    assert fallback.note.startswith(f"midframe: {broken}: not valid YAML") and "\n" not in fallback.note

    locate.record(pointer, state_dir=tmp_path / "running", config_path=good, pid=4242)
    found = locate.locate_state_dir(broken, pointer=pointer)
    assert found.source == "recorded" and found.state_dir == tmp_path / "running"
    assert found.note.endswith(f"using the state dir {tmp_path / 'running'} recorded by the running daemon (pid 4242)")
    assert locate.locate_state_dir(good, pointer=pointer).source == "config"  # a readable config wins
    hint = locate.hint_for_missing_daemon(locate.locate_state_dir(good, pointer=pointer), pointer=pointer)
    assert hint == f"a midframe daemon (started with --config {good}) recorded the state dir {tmp_path / 'running'}"


def test_the_record_is_removed_only_by_its_owner(tmp_path):
    pointer = tmp_path / locate.POINTER_FILE
    locate.record(pointer, state_dir=tmp_path / "s", config_path=None, pid=os.getpid() + 1)
    locate.forget(pointer, state_dir=tmp_path / "s")  # another daemon's: kept
    assert locate.read_recorded(pointer).pid == os.getpid() + 1
    locate.record(pointer, state_dir=tmp_path / "s", config_path=None)
    locate.forget(pointer, state_dir=tmp_path / "other")  # ours, but for another state dir: kept
    assert pointer.exists()
    locate.forget(pointer, state_dir=tmp_path / "s")
    assert not pointer.exists()
    assert list(tmp_path.iterdir()) == []  # no partial files left behind
    pointer.write_text("{half a reco", encoding="utf-8")
    assert locate.read_recorded(pointer) is None


@pytest.fixture
def daemon(tmp_path):
    process = DaemonProcess(tmp_path / "d")
    yield process
    process.stop_if_running()


def test_status_and_stop_answer_while_the_config_holds_broken_yaml(daemon, tmp_path):
    daemon.start()
    pointer = locate.pointer_path()
    wait_for(pointer.exists, timeout=10, what="the daemon's record")  # written just after the API is up
    recorded = json.loads(pointer.read_text())
    assert recorded == {"state_dir": str(daemon.state), "pid": daemon.proc.pid, "config": str(daemon.config_path)}
    assert daemon.cli("status").stderr == ""  # the config's own state dir: nothing to say

    other = tmp_path / "other.yaml"  # a readable config for another state dir: told where the daemon is
    other.write_text(f"daemon: {{state_dir: {tmp_path / 'elsewhere'}}}\n", encoding="utf-8")
    elsewhere = subprocess.run([sys.executable, "-m", "midframe", "status", "--config", str(other)], cwd=ROOT,
                               env=daemon.env, capture_output=True, text=True, timeout=30)
    assert elsewhere.returncode == 1
    assert f"(started with --config {daemon.config_path}) recorded the state dir {daemon.state}" in elsewhere.stderr

    daemon.config_path.write_text("inbox: [this is not, yaml\n  outbox: {", encoding="utf-8")
    status = daemon.cli("status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "idle"
    note = status.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith(f"midframe: {daemon.config_path}: not valid YAML")
    assert note[0].endswith(f"using the state dir {daemon.state} recorded by the running daemon (pid {daemon.proc.pid})")

    plain = daemon.cli("status")
    assert plain.returncode == 0 and plain.stdout.startswith("idle; queued 0, done 0, failed 0"), plain

    stop = daemon.cli("stop")
    assert stop.returncode == 0 and f"the daemon (pid {daemon.proc.pid}) stops after the current batch" in stop.stdout
    assert daemon.wait_exit(30) == 0
    assert not pointer.exists()  # removed at a clean stop
    gone = daemon.cli("status")
    assert gone.returncode == 1 and "no midframe daemon is running on" in gone.stderr
