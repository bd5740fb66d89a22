"""``python -m mediaapp`` is the ``mediaapp`` command."""

import sys

from mediaapp.ops.cli import main

sys.exit(main())
