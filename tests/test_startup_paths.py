"""A `midframe/` folder in the working directory cannot shadow the package for the systemd unit, the
tray's "Start daemon" or the fallback command line: each is run from such a folder, for real."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from midframe import __version__
from midframe.commandline import midframe_command
from midframe.service import systemd

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def shadowed(tmp_path: Path) -> Path:
    """A folder holding a `midframe` package that is not midframe."""
    fake = tmp_path / "midframe"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise SystemExit('the midframe folder in the working directory ran')\n")
    (fake / "__main__.py").write_text("raise SystemExit('the midframe folder in the working directory ran')\n")
    return tmp_path


def run_in(folder: Path, command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_folder_does_shadow_a_plain_python_m(shadowed):
    """The trap is real: `python -m midframe` from that folder runs the impostor."""
    done = run_in(shadowed, [sys.executable, "-m", "midframe", "--version"])
    assert done.returncode != 0 and "working directory ran" in done.stderr


def test_the_unit_starts_the_real_midframe(shadowed, tmp_path):
    unit = systemd.unit_text(scope="user", config_path=tmp_path / "c.yaml")
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    words = [word.replace("%%", "%").replace("$$", "$") for word in shlex.split(line.removeprefix("ExecStart="))]
    assert words[-3:] == ["watch", "--config", str(tmp_path / "c.yaml")]
    assert Path(words[0]).is_absolute()
    done = run_in(shadowed, [*words[:-3], "--version"])
    assert done.returncode == 0 and done.stdout.strip() == f"midframe {__version__}", done.stderr


def test_the_fallback_command_line_starts_the_real_midframe(shadowed):
    command = midframe_command("--version", folders=[])  # no console script: the interpreter with -P
    assert command == [sys.executable, "-P", "-m", "midframe", "--version"]
    done = run_in(shadowed, command)
    assert done.returncode == 0 and done.stdout.strip() == f"midframe {__version__}", done.stderr


def test_a_console_script_of_another_python_is_not_used(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "midframe").write_text("#!/usr/bin/python2.7\nprint('old')\n")
    assert midframe_command("watch", folders=[bin_dir])[:3] == [sys.executable, "-P", "-m"]
    (bin_dir / "midframe").write_text(f"#!{sys.executable}\n")
    assert midframe_command("watch", folders=[bin_dir]) == [str(bin_dir / "midframe"), "watch"]
