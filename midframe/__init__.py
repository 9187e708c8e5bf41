"""midframe: a daemon that makes videos smoother with frame interpolation."""

from __future__ import annotations

__version__ = "0.1.0"
