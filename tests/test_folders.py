"""Folders checked before the daemon starts (one line, the daemon refuses), and the inbox lock that
stops a second daemon from converting every file a second time. Real folders and real OS locks; the
other daemon is a real second process holding the lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from midframe.config import config_from_mapping, resolve_paths
from midframe.daemon.folders import check_folders, layout_problem
from midframe.daemon.lock import INBOX_LOCK_FILE, InboxLock, LocksUnsupported
from midframe.errors import AlreadyRunning, ConfigError

ROOT = Path("/v")


def test_the_same_folder_twice_or_one_inside_another_is_refused():
    apart = {"inbox": ROOT / "inbox", "outbox": ROOT / "outbox", "daemon.done_dir": ROOT / "done",
             "daemon.failed_dir": ROOT / "failed", "daemon.state_dir": Path("/home/u/.local/state/midframe")}
    assert layout_problem(apart) is None
    same = layout_problem({**apart, "outbox": ROOT / "inbox"})
    assert same.startswith("inbox and outbox are the same folder (/v/inbox), and what midframe puts there would "
                           "be taken for new videos and converted again; give each its own folder")
    inside = layout_problem({**apart, "outbox": ROOT / "inbox" / "out"})
    assert inside.startswith("outbox (/v/inbox/out) is inside inbox (/v/inbox)")
    around = layout_problem({**apart, "daemon.failed_dir": ROOT})
    assert around.startswith("inbox (/v/inbox) is inside daemon.failed_dir (/v)")
    state = layout_problem({**apart, "daemon.state_dir": ROOT / "done" / "state"})
    assert state.startswith("daemon.state_dir (/v/done/state) is inside daemon.done_dir (/v/done), and midframe "
                            "keeps different files in each")
    assert layout_problem({**apart, "outbox": ROOT / "inbox2"}) is None      # a shared prefix is not nesting


def config_for(tmp_path: Path, **overrides):
    base = {"inbox": str(tmp_path / "in"), "outbox": str(tmp_path / "out"),
            "daemon": {"state_dir": str(tmp_path / "state")}}
    for key, value in overrides.items():
        if key.startswith("daemon."):
            base["daemon"][key.removeprefix("daemon.")] = value
        else:
            base[key] = value
    return config_from_mapping(base)


def test_check_folders_sees_through_links_and_names_the_key(tmp_path):
    config = config_for(tmp_path)
    check_folders(resolve_paths(config), config)                           # the defaults beside the inbox pass
    (tmp_path / "in").mkdir()
    os.symlink(tmp_path / "in", tmp_path / "link")
    linked = config_for(tmp_path, outbox=str(tmp_path / "link"))
    with pytest.raises(ConfigError, match=r"^inbox and outbox are the same folder"):
        check_folders(resolve_paths(linked), linked)
    kept = config_for(tmp_path, **{"daemon.done_dir": str(tmp_path / "out"), "daemon.on_success": "keep"})
    check_folders(resolve_paths(kept), kept)                               # done_dir unused with keep
    (tmp_path / "file").write_text("x")
    a_file = config_for(tmp_path, outbox=str(tmp_path / "file"))
    with pytest.raises(ConfigError, match=r"^outbox \(.*file\) is a file, not a folder"):
        check_folders(resolve_paths(a_file), a_file)
    read_only = config_for(tmp_path)
    with pytest.raises(ConfigError, match=r"^daemon.failed_dir \(.*failed, or the folder it would be made in,\) "
                                          r"cannot be written \(Read-only file system\)"):
        check_folders(resolve_paths(read_only), read_only,
                      writable=lambda folder: "Read-only file system" if folder.name == "failed" else None)


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from midframe.daemon.lock import InboxLock
    lock = InboxLock(Path(sys.argv[1]), Path(sys.argv[2]))
    assert lock.acquire(shared=False) is None
    print("held", flush=True)
    sys.stdin.read()
""")


def test_a_second_daemon_on_the_inbox_is_refused_unless_shared_and_a_dead_ones_lock_is_taken_over(tmp_path):
    inbox = tmp_path / "inbox"
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(inbox), str(tmp_path / "state-a")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert other.stdout.readline() == "held\n"
        lock = InboxLock(inbox, tmp_path / "state-b")
        with pytest.raises(AlreadyRunning, match=rf"^another midframe daemon \(pid {other.pid}, state dir "
                                                 rf".*state-a\) watches .*inbox; two daemons would convert"):
            lock.acquire(shared=False)
        warning = lock.acquire(shared=True)
        assert warning.endswith("daemon.shared_inbox is true, so both go on (each file may be converted by both)")
    finally:
        other.kill()
        other.wait(10)
    # Killed: the OS let go of its lock; what it wrote is still there, and is taken over.
    assert json.loads((inbox / INBOX_LOCK_FILE).read_text())["pid"] == other.pid
    lock = InboxLock(inbox, tmp_path / "state-b")
    assert lock.acquire(shared=False) is None
    assert json.loads((inbox / INBOX_LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (inbox / INBOX_LOCK_FILE).exists()


def test_without_os_locks_the_pid_decides(tmp_path, monkeypatch):
    """A file system without locks (some network shares) is simulated: flock says ENOLCK."""
    import errno

    from midframe.daemon import lock as lock_module

    def no_locks(handle, offset=0):
        raise LocksUnsupported(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module, "_try_lock", no_locks)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (inbox / INBOX_LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                                     "state_dir": "/gone"}))
    lock = InboxLock(inbox, tmp_path / "state")
    assert lock.acquire(shared=False) is None                               # its process is gone: taken over
    lock.release()
    (inbox / INBOX_LOCK_FILE).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                                     "state_dir": "/elsewhere"}))
    with pytest.raises(AlreadyRunning, match="state dir /elsewhere"):      # alive: refused
        InboxLock(inbox, tmp_path / "state").acquire(shared=False)
