"""loguru sinks: stderr for people, a rotating file in the log dir for later."""

from __future__ import annotations

import sys
from pathlib import Path

from loguru import logger

LOG_FILE_NAME = "midframe.log"


def configure_logging(*, level: str = "INFO", log_dir: Path | None = None, stderr: bool = True) -> None:
    logger.remove()
    if stderr:
        logger.add(sys.stderr, level=level, format="{time:HH:mm:ss} | {level: <7} | {message}")
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        logger.add(
            log_dir / LOG_FILE_NAME,
            level=level,
            rotation="10 MB",
            retention=5,
            encoding="utf-8",
            format="{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {name}:{line} | {message}",
        )
