"""The control API's files in the state dir, and the proof that a server knows the token.

``control.json`` (``{"url", "pid"}``) says where the daemon listens; ``control.token`` (mode 0600) holds
a secret made fresh at every start, so a token read before a restart is useless after it. A client
never sends the token before the server has proved it knows it: the client sends a random nonce to the
unauthenticated ``GET /hello`` and checks the answer against :func:`hello_proof`, which binds the
nonce to the port and pid the server really has (a relay on another port cannot reuse an answer).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from midframe.fs.safe_write import atomic_write

CONTROL_FILE = "control.json"
TOKEN_FILE = "control.token"
NONCE_BYTES = 32


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, replacing it atomically."""
    atomic_write(path, text, mode=0o600)


def new_token(state_dir: Path) -> str:
    """A fresh secret, written to ``control.token`` (0600); the previous daemon's token stops working."""
    token = secrets.token_urlsafe(32)
    state_dir.mkdir(parents=True, exist_ok=True)
    write_private(state_dir / TOKEN_FILE, token + "\n")
    return token


def read_token(state_dir: Path) -> str | None:
    try:
        token = (state_dir / TOKEN_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token or None


def hello_proof(token: str, *, nonce: str, port: int, pid: int) -> str:
    """What only a holder of ``token`` can answer to ``nonce``, for the server on ``port`` with ``pid``."""
    message = f"midframe-control-hello {nonce} {port} {pid}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def valid_nonce(text: str) -> bool:
    return 32 <= len(text) <= 128 and all(c in "0123456789abcdef" for c in text)


def write_control_file(state_dir: Path, url: str, *, pid: int | None = None) -> Path:
    path = state_dir / CONTROL_FILE
    write_private(path, json.dumps({"url": url, "pid": os.getpid() if pid is None else pid}) + "\n")
    return path


def read_control_file(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / CONTROL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("url"), str) else None


def remove_control_file(state_dir: Path, *, pid: int | None = None) -> None:
    """Remove ``control.json`` if it is ours (another daemon may have taken over the state dir)."""
    data = read_control_file(state_dir)
    if data is not None and data.get("pid") == (os.getpid() if pid is None else pid):
        (state_dir / CONTROL_FILE).unlink(missing_ok=True)
