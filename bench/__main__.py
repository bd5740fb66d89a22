"""``python -m bench {overhead,soak} [--quick] ...``: see each module's docstring."""

from __future__ import annotations

import sys

from bench import auditrate, coldstart, dispatch, ladder, overhead, scaling, soak

COMMANDS = {
    "overhead": overhead.main,
    "soak": soak.main,
    "ladder": ladder.main,
    "dispatch": dispatch.main,
    "audit": auditrate.main,
    "scaling": scaling.main,
    "coldstart": coldstart.main,
}

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in COMMANDS:
        sys.exit(f"usage: python -m bench {{{','.join(COMMANDS)}}} [options]")
    sys.exit(COMMANDS[name](sys.argv[2:]))
