"""Settings always take: the daemon watches the config file it would read, also one written after it
started; SIGHUP re-reads; every reload is logged with what changed; `midframe config init` says
whether the running daemon will read the file it wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from loguru import logger

from midframe.api import locate
from midframe.api.client import ControlClient, process_alive
from midframe.config import Config, config_from_mapping
from midframe.daemon.settings import ConfigSource, config_changes
from midframe.errors import ControlError
from tests.daemon_process import ROOT, wait_for
from tests.media import make_clip, probe_json


@pytest.fixture
def said():
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message).rstrip("\n")), level="INFO", format="{message}")
    yield lines
    logger.remove(sink)


def test_changes_name_each_key_with_its_old_and_new_value():
    old = config_from_mapping({})
    new = config_from_mapping({"engine": {"factor": 3, "target_fps": "60000/1001"}, "output": {"codec": "ffv1"},
                               "profiles": {"slow": {"engine": {"mode": "slowmo", "target_fps": None}}}})
    assert config_changes(old, new) == ["engine.factor 2 -> 3", "engine.target_fps null -> 60000/1001",
                                        "output.codec auto -> ffv1", "profiles.slow added"]
    assert config_changes(new, old)[-1] == "profiles.slow removed"
    assert config_changes(old, Config()) == []


def test_a_file_that_appears_after_the_start_is_read_and_the_reload_logged(tmp_path, said):
    path = tmp_path / "config.yaml"
    source = ConfigSource(path, Config())
    assert source.refresh() == Config() and not said           # no file: the defaults, nothing to say
    path.write_text("engine:\n  factor: 3\n", encoding="utf-8")
    assert source.refresh().engine.factor == 3
    assert said == [f"config reloaded from {path}: engine changed: engine.factor 2 -> 3 (from the next job on)"]
    assert source.refresh().engine.factor == 3 and len(said) == 1  # read once per change
    path.write_text("engine:\n  factor: 3\ninbox: /elsewhere\n", encoding="utf-8")
    os.utime(path, ns=(1, 1))
    assert source.refresh().inbox == Path("/elsewhere")
    assert said[-1] == "config: inbox changed; that takes effect after a restart"
    path.unlink()
    assert source.refresh().engine.factor == 3                  # a file removed keeps what is in force
    assert "is not there (any more); the settings in force are kept" in said[-1]


def test_an_asked_reload_says_so_even_when_nothing_changed(tmp_path, said):
    path = tmp_path / "config.yaml"
    path.write_text("engine: {factor: 4}\n", encoding="utf-8")
    source = ConfigSource(path, config_from_mapping({"engine": {"factor": 4}}))
    assert source.reload().engine.factor == 4
    assert said == [f"config reloaded from {path}: nothing changed"]


def test_config_init_says_whether_the_running_daemon_reads_the_file(tmp_path):
    pointer, target = tmp_path / "running.json", tmp_path / "conf" / "config.yaml"

    def pickup(*, recorded: dict | None, alive: bool = True) -> str:
        if recorded is not None:
            pointer.write_text(json.dumps(recorded), encoding="utf-8")
        return locate.config_pickup(target, pointer=pointer, alive=lambda pid: alive)

    assert pickup(recorded=None).startswith("no midframe daemon is running")
    mine = {"state_dir": str(tmp_path / "state"), "pid": 4242}
    assert pickup(recorded={**mine, "config": str(target)}, alive=False).startswith("no midframe daemon is running")
    assert pickup(recorded={**mine, "config": str(target)}) == (
        "the running midframe daemon (pid 4242) reads this file: a saved edit applies from its next job on "
        "(folders, watcher and port settings after a restart)")
    other = tmp_path / "other.yaml"
    assert pickup(recorded={**mine, "config": str(other)}) == (
        f"the running midframe daemon (pid 4242) reads {other}, not this file; restart it with --config {target} "
        "to use this one")
    assert "was started without a config file and does not read this one" in pickup(recorded={**mine, "config": None})


def _environment(home: Path) -> dict[str, str]:
    """A fresh user: HOME and every XDG folder under ``home``. No RIFE weights in its cache, and pip
    told to use no index, so the daemon's first-start fetch fails at once instead of reaching out."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DBUS_SESSION_BUS_ADDRESS", "NOTIFY_SOCKET", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / ".local/state"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local/share"), PIP_NO_INDEX="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def _client(state_dir: Path) -> ControlClient | None:
    try:
        client = ControlClient.from_state_dir(state_dir)
        client.status()
    except (OSError, ValueError, ControlError):
        return None
    return client


def test_a_config_written_after_the_start_takes_without_a_restart(tmp_path):
    """The README's order: `midframe watch` with no config file, `midframe config init`, then an edit
    (engine.factor: 3, and the blend engine to keep the test fast): the next video has three times its
    frames, and the log says the config was reloaded. A real daemon, real folders, a real clip."""
    home = tmp_path / "home"
    home.mkdir()
    env = _environment(home)
    config_path = home / ".config" / "midframe" / "config.yaml"
    state_dir = home / ".local/state" / "midframe"
    inbox, outbox = home / "Videos" / "midframe" / "inbox", home / "Videos" / "midframe" / "outbox"
    log = tmp_path / "daemon.log"
    before = subprocess.run([sys.executable, "-m", "midframe", "status"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert before.returncode == 1 and "start one with `midframe run`" in before.stderr  # the Quick start's command
    daemon = subprocess.Popen([sys.executable, "-m", "midframe", "watch"], cwd=tmp_path, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "wb"),  # noqa: SIM115
                              start_new_session=True)
    try:
        def answering() -> ControlClient | None:
            assert daemon.poll() is None, log.read_text(errors="replace")
            return _client(state_dir)

        client = wait_for(answering, timeout=120, step=0.2, what="the daemon to answer")
        started = log.read_text(errors="replace")  # where the log is and how to open the dashboard
        assert f"the log is in {home / '.local/state/midframe/log/midframe.log'}" in started
        assert "the dashboard: `midframe dashboard` opens it in your browser, logged in (http://127.0.0.1:" in started
        assert not config_path.exists()
        init = subprocess.run([sys.executable, "-m", "midframe", "config", "init"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert init.returncode == 0, init.stderr
        assert init.stdout.splitlines() == [
            f"wrote {config_path}",
            f"the running midframe daemon (pid {daemon.pid}) reads this file: a saved edit applies from its next "
            "job on (folders, watcher and port settings after a restart)"]
        text = config_path.read_text(encoding="utf-8")
        assert "  name: auto\n" in text and "  factor: 2\n" in text
        edited = text.replace("  name: auto\n", "  name: blend\n").replace("  factor: 2\n", "  factor: 3\n")
        config_path.write_text(edited, encoding="utf-8")
        wait_for(lambda: "engine.factor 2 -> 3" in log.read_text(errors="replace"), timeout=30, step=0.2,
                 what="the reload in the log")
        reloaded = [line for line in log.read_text(errors="replace").splitlines() if "engine.factor 2 -> 3" in line]
        assert (f"config reloaded from {config_path}: engine changed: engine.name auto -> blend, engine.factor 2 -> 3 "
                "(from the next job on)") in reloaded[-1]

        clip = make_clip(tmp_path / "clip.mp4", seconds=1, fps="10", size="64x48")
        partial = inbox / ".clip.mp4.part"
        partial.write_bytes(clip.read_bytes())
        partial.rename(inbox / "clip.mp4")
        wait_for(lambda: any(job["state"] in ("done", "failed") for job in client.jobs()), timeout=120, step=0.3,
                 what="the clip to be converted")
        job = client.jobs()[0]
        assert job["state"] == "done", job
        outputs = [path for path in outbox.iterdir() if not path.name.startswith(".")]
        assert [path.name for path in outputs] == ["clip.30fps.mp4"]
        video = next(s for s in probe_json(outputs[0])["streams"] if s["codec_type"] == "video")
        assert int(video["nb_read_frames"]) == 3 * 10

        # SIGHUP re-reads at once and says so, even with nothing changed.
        os.kill(daemon.pid, signal.SIGHUP)
        wait_for(lambda: f"config reloaded from {config_path}: nothing changed" in log.read_text(errors="replace"),
                 timeout=30, step=0.2, what="the SIGHUP reload in the log")
        assert daemon.poll() is None
        assert process_alive(daemon.pid)
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(10)
