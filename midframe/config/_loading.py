"""Reading a config: YAML text or a mapping validated into ``Config``, every error in words that name
the file, its line and column, the key, the value and what is allowed there (``_errors``, ``_yaml``);
CLI overrides validated the same way; the example config (``midframe/config.example.yaml``, the
defaults) read and written."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from midframe.config._errors import Locate, describe_errors
from midframe.config._paths import default_config_path
from midframe.config._sections import PROFILE_SECTIONS, Config, _Section
from midframe.config._yaml import describe_yaml_error, position, read_yaml
from midframe.errors import ConfigError
from midframe.fs.publish import publish
from midframe.fs.safe_write import atomic_write, temporary_name


def _inherited(error: Mapping[str, Any], data: dict[str, Any]) -> bool:
    """An error in a profile's section about a key the profile took from the top level: the top
    level's own error says it already."""
    loc = error["loc"]
    if len(loc) < 4 or loc[0] != "profiles" or loc[2] not in PROFILE_SECTIONS:
        return False
    own = (data.get("profiles") or {}).get(loc[1])
    section = own.get(loc[2], {}) if isinstance(own, dict) else None
    return isinstance(section, dict) and loc[3] not in section


def config_from_mapping(data: Any, *, source: str = "config", locate: Locate | None = None) -> Config:
    """``data`` validated; ``locate`` (from the YAML's nodes) adds the line and column to each error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = [err for err in exc.errors() if not _inherited(err, data)] or exc.errors()
        raise ConfigError("\n".join(describe_errors(errors, root=Config, source=source, locate=locate))) from None


def load_config(path: Path | None) -> Config:
    """Load the YAML at ``path``; with ``None``, the default file if it exists, else the defaults."""
    if path is None:
        path = default_config_path()
        if not path.exists():
            return Config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        data, root = read_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {describe_yaml_error(text, exc)}") from None
    return config_from_mapping(data, source=str(path),
                               locate=lambda loc, at_key: position(root, loc, at_key=at_key))


def with_overrides(section: _Section, **changes: Any) -> Any:
    """A copy of ``section`` with the non-None ``changes`` applied and validated (CLI options)."""
    updates = {key: value for key, value in changes.items() if value is not None}
    if not updates:
        return section
    try:
        return type(section).model_validate({**section.model_dump(), **updates})
    except ValidationError as exc:
        raise ConfigError("\n".join(describe_errors(exc.errors(), root=type(section), source="option"))) from None


def example_config_text() -> str:
    return resources.files("midframe").joinpath("config.example.yaml").read_text(encoding="utf-8")


def write_example_config(path: Path, *, overwrite: bool = False) -> Path:
    """The example config at ``path``, complete or not at all; never over a config that is there (one
    written meanwhile too), unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise ConfigError(f"{path}: already exists; not overwriting it")
    path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        atomic_write(path, example_config_text())
        return path
    staged = temporary_name(path)
    try:
        atomic_write(staged, example_config_text())
        publish(staged, path)
    except FileExistsError:
        raise ConfigError(f"{path}: already exists; not overwriting it") from None
    finally:
        staged.unlink(missing_ok=True)
    return path
