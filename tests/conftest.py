from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests import footage


@pytest.fixture(scope="session", autouse=True)
def private_state_home(tmp_path_factory):
    """Daemons record where they run in the platform's state dir (midframe.api.locate); tests,
    and the daemons and CLIs they start, use a folder of their own, not the user's."""
    import os

    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("xdg-state"))
    yield
    if saved is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = saved


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves a thread of its own running (watchdog's fixture of the same idea)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture(scope="session")
def openvino_converter_started() -> None:
    """OpenVINO's converter starts tqdm's monitor thread once per process: here, not inside a test
    (which the leaked-thread check would blame), for the tests that convert RIFE's graph."""
    from midframe.engine.interpolators.rife.backends import importable

    if importable("openvino"):
        import warnings

        import torch

        from midframe.engine.interpolators.rife.openvino_net import import_openvino

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecations
            tiny = torch.export.export(torch.nn.Conv2d(3, 3, 3), (torch.zeros(1, 3, 8, 8),))
            import_openvino().convert_model(tiny)


@pytest.fixture(scope="session")
def rife_weights() -> Path:
    """The models dir holding the published v4.25 weights (the default cache, fetched if missing)."""
    from midframe.config import Config, resolve_paths
    from midframe.engine.interpolators.rife import weights
    from midframe.errors import WeightsError

    models_dir = resolve_paths(Config()).models_dir
    if weights.installed_weights(models_dir) is None:
        try:
            weights.fetch_weights(models_dir)
        except WeightsError as exc:
            pytest.fail(f"the RIFE tests need the real weights; `midframe models fetch` failed: {exc}")
    found = weights.installed_weights(models_dir)
    assert found is not None
    if found.sha256 != weights.PUBLISHED_SHA256:
        pytest.fail(f"{found.path} holds {found.version} weights, not the published v4.25 file; "
                    "run `midframe models fetch --force`")
    return models_dir


@pytest.fixture(scope="session")
def bigbuckbunny() -> Path:
    return footage.bigbuckbunny()
