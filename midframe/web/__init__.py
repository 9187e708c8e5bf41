"""The web dashboard: a page shipped in the package and its routes on the control API's port."""

from __future__ import annotations

from midframe.web.assets import load_assets
from midframe.web.dashboard import Dashboard, effective_settings
from midframe.web.sessions import Sessions

__all__ = ["Dashboard", "Sessions", "effective_settings", "load_assets"]
