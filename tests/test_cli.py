from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from midframe.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


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


def test_config_init_writes_the_example(tmp_path, capsys):
    target = tmp_path / "conf" / "config.yaml"
    assert main(["config", "init", "--config", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    assert main(["config", "init", "--config", str(target)]) == 2


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "midframe", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith("midframe ")
