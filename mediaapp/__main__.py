"""``python -m mediaapp`` is the ``mediaapp`` command."""

import sys

from mediaapp.cli import main

sys.exit(main())
