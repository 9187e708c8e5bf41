"""The config file a service reads: an absolute path (a service has another working dir), written from
the example when missing and validated before the service manager is told about it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from midframe.config import default_config_path, load_config, write_example_config
from midframe.errors import MidframeError

Output = Callable[[str], None]


class ServiceError(MidframeError):
    """The service manager is missing or refused."""


def service_config_path(config_path: Path | None) -> Path:
    """The config file a service reads, as an absolute path (a service has another working dir)."""
    return Path(config_path or default_config_path()).expanduser().absolute()


def prepare_config(config_path: Path | None, *, dry_run: bool, out: Output) -> Path:
    """The absolute config path; writes the example config there if none exists, and validates it."""
    path = service_config_path(config_path)
    if not path.exists():
        if dry_run:
            out(f"# would write the example config to {path}")
            return path
        write_example_config(path)
        out(f"wrote {path} (the defaults; edit it, then reload the service)")
    load_config(path)
    return path
