"""The layers the README draws, enforced: media never reaches up, no import cycles, small
modules, and only settings reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("mediaapp", "tasks")
#: Who may import whom, by layer; the shared modules (errors, settings, defaults) are below all.
ALLOWED = {
    "mediaapp.storage": {"mediaapp.storage", "shared"},
    "mediaapp.media": {"mediaapp.media", "mediaapp.storage", "shared"},
    "mediaapp.jobs": {"mediaapp.jobs", "mediaapp.media", "mediaapp.storage", "shared"},
    "mediaapp.ops": {
        "mediaapp.ops",
        "mediaapp.jobs",
        "mediaapp.media",
        "mediaapp.storage",
        "shared",
    },
    "tasks": {"tasks", "mediaapp.jobs", "mediaapp.media", "mediaapp.storage", "shared"},
}
SHARED = {"mediaapp.errors", "mediaapp.settings", "mediaapp.defaults", "mediaapp.limits"}
#: ``mediaapp`` itself is the public facade (``mediaapp.submit``, ``mediaapp.app``): it may
#: import any layer, lazily, and no module of ours imports it.
FACADE = "mediaapp"
#: Modules allowed to read the process environment: settings, and the builders of a child
#: process's environment (the demo's worker, Flower).
ENV_READERS = {"mediaapp.settings", "mediaapp.ops.demo", "mediaapp.ops.flower"}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports count too);
    ``from package import module`` counts as importing the module, not the package."""
    known = modules()
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                names.add(sub if sub in known else node.module)
    return names


def layer(module: str) -> str:
    if module in (FACADE, "mediaapp.__main__"):
        return "facade"
    if module in SHARED:
        return "shared"
    for name in ALLOWED:
        if module == name or module.startswith(name + "."):
            return name
    return "mediaapp" if module.startswith("mediaapp") else "other"


def internal_graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: {i for i in imports(p) if i in mods and i != m} for m, p in mods.items()}


def test_each_layer_imports_only_what_it_may() -> None:
    wrong = []
    for module, targets in internal_graph().items():
        own = layer(module)
        if own == "facade":
            continue
        if own == "shared":
            wrong += [(module, t) for t in targets if layer(t) != "shared"]
            continue
        wrong += [(module, t) for t in targets if layer(t) not in ALLOWED[own]]
    assert not wrong


def test_the_media_layer_never_imports_celery_or_kombu() -> None:
    mods = modules()
    offenders = {
        m: sorted(i for i in imports(p) if i.split(".")[0] in ("celery", "kombu"))
        for m, p in mods.items()
        if layer(m) in ("mediaapp.media", "mediaapp.storage")
    }
    assert not {m: i for m, i in offenders.items() if i}


def test_no_import_cycles() -> None:
    graph = internal_graph()
    # Package __init__ modules re-export; an edge into a package is an edge into __init__.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles


def test_no_module_is_over_400_lines() -> None:
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_only_settings_reads_the_environment() -> None:
    readers = set()
    for module, path in modules().items():
        text = path.read_text()
        if "os.environ" in text or "getenv(" in text:
            readers.add(module)
    assert readers <= ENV_READERS, readers - ENV_READERS


def test_importing_mediaapp_builds_and_writes_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    data = tmp_path / "data"
    code = "import sys, mediaapp, mediaapp.media.steps; print('celery' in sys.modules)"
    env = {"MEDIAAPP_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"False"  # the media layer works without Celery
    assert not data.exists()
