from __future__ import annotations

import sys

from midframe.cli import main

sys.exit(main())
