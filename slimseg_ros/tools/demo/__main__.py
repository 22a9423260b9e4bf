"""``python -m slimseg_ros.tools.demo``: the same as ``slimseg-demo``."""

import sys

from .cli import main

sys.exit(main())
