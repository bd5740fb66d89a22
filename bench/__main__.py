"""``python -m bench [--quick]`` runs the suite; ``python -m bench NAME [options]`` one benchmark
(see each module's docstring)."""

from __future__ import annotations

import sys

from bench import (
    auditrate,
    coldstart,
    dispatch,
    fairshare,
    hdr,
    ladder,
    manyjobs,
    memory,
    multicodec,
    overhead,
    quality,
    scaling,
    soak,
    storage,
    suite,
)

COMMANDS = {
    "overhead": overhead.main,
    "manyjobs": manyjobs.main,
    "memory": memory.main,
    "ladder": ladder.main,
    "dispatch": dispatch.main,
    "audit": auditrate.main,
    "scaling": scaling.main,
    "coldstart": coldstart.main,
    "soak": soak.main,
    "storage": storage.main,
    "quality": quality.main,
    "hdr": hdr.main,
    "fairshare": fairshare.main,
    "multicodec": multicodec.main,
}

if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] in COMMANDS:
        sys.exit(COMMANDS[args[0]](args[1:]))
    if args and not args[0].startswith("-"):
        sys.exit(f"usage: python -m bench [--quick] | python -m bench {{{','.join(COMMANDS)}}} ...")
    sys.exit(suite.main(args))
