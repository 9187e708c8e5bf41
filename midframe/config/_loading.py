"""Reading a config: YAML text or a mapping validated into ``Config``, every error in words that name
the file, the key and what is allowed there; CLI overrides validated the same way; the example config
(``midframe/config.example.yaml``, the defaults) read and written."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from midframe.config._paths import default_config_path
from midframe.config._sections import PROFILE_SECTIONS, Config, _Section
from midframe.errors import ConfigError


def _allowed_keys(section_path: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Config
    parts = list(section_path)
    while parts:
        annotation = model.model_fields[str(parts.pop(0))].annotation
        if get_origin(annotation) is dict:  # profiles: the next part is a name
            annotation = get_args(annotation)[1]
            if not parts:
                break
            parts.pop(0)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return list(model.model_fields)


def _inherited(error: dict[str, Any], data: dict[str, Any]) -> bool:
    """An error in a profile's section about a key the profile took from the top level: the top
    level's own error says it already."""
    loc = error["loc"]
    if len(loc) < 4 or loc[0] != "profiles" or loc[2] not in PROFILE_SECTIONS:
        return False
    own = (data.get("profiles") or {}).get(loc[1])
    section = own.get(loc[2], {}) if isinstance(own, dict) else None
    return isinstance(section, dict) and loc[3] not in section


SECRET_KEYS = ("notifications.urls",)


def _describe(error: dict[str, Any], source: str) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r}; allowed here: {', '.join(_allowed_keys(error['loc'][:-1]))}"
    message = error["msg"].removeprefix("Value error, ")
    if key.startswith(SECRET_KEYS):  # Apprise URLs hold their services' tokens: never repeated
        return f"{source}: {key}: {message}"
    return f"{source}: {key} = {error.get('input')!r}: {message}"


def config_from_mapping(data: Any, *, source: str = "config") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = [err for err in exc.errors() if not _inherited(err, data)] or exc.errors()
        raise ConfigError("\n".join(_describe(err, source) for err in errors)) from None


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
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return config_from_mapping(data, source=str(path))


def with_overrides(section: _Section, **changes: Any) -> Any:
    """A copy of ``section`` with the non-None ``changes`` applied and validated (CLI options)."""
    updates = {key: value for key, value in changes.items() if value is not None}
    if not updates:
        return section
    try:
        return type(section).model_validate({**section.model_dump(), **updates})
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(err, "option") for err in exc.errors())) from None


def example_config_text() -> str:
    return resources.files("midframe").joinpath("config.example.yaml").read_text(encoding="utf-8")


def write_example_config(path: Path, *, overwrite: bool = False) -> Path:
    if path.exists() and not overwrite:
        raise ConfigError(f"{path}: already exists; not overwriting it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example_config_text(), encoding="utf-8")
    return path
