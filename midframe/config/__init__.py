"""The YAML configuration (httpx-style: private modules re-exported here, so ``midframe.config`` is the
one import path):

- ``_sections``: the schema, pydantic models for every section and profile, and ``parse_fps``;
- ``_paths``: the folders a config names, resolved (``Paths``, ``resolve_paths``, the default file);
- ``_loading``: loading YAML with errors that name the key, CLI overrides, the example config.
"""

from __future__ import annotations

from midframe.config._loading import (
    config_from_mapping,
    example_config_text,
    load_config,
    with_overrides,
    write_example_config,
)
from midframe.config._paths import APP_NAME, Paths, default_config_path, resolve_paths
from midframe.config._sections import (
    PROFILE_SECTIONS,
    VIDEO_EXTENSIONS,
    Config,
    DaemonConfig,
    EngineConfig,
    FarmConfig,
    LoggingConfig,
    NotificationsConfig,
    OutputConfig,
    Profile,
    ResumeConfig,
)
from midframe.engine import parse_fps

__all__ = [
    "APP_NAME",
    "PROFILE_SECTIONS",
    "VIDEO_EXTENSIONS",
    "Config",
    "DaemonConfig",
    "EngineConfig",
    "FarmConfig",
    "LoggingConfig",
    "NotificationsConfig",
    "OutputConfig",
    "Paths",
    "Profile",
    "ResumeConfig",
    "config_from_mapping",
    "default_config_path",
    "example_config_text",
    "load_config",
    "parse_fps",
    "resolve_paths",
    "with_overrides",
    "write_example_config",
]
