"""The package's floors (docs/ARCHITECTURE.md): every import points down or sideways within a
floor, never up, and no module imports itself back through others; no module over 400 lines."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tem_lib"
# lowest first; a module may import its own floor and the floors below (docs/ARCHITECTURE.md)
FLOORS = [
    ("foundations", {"utils", "config", "layout", "geometry", "classes", "plugins"}),
    ("data", {"data", "stats", "viz"}),
    ("methods", {"checkpoint", "parallel", "metrics", "simulate", "priors"}),
    ("models", {"detection", "ldm", "segmentation"}),
    ("applications", {"augment", "quantify", "workspace", "annotate", "explore", "label", "pretrained"}),
    ("orchestration", {"study", "unet_study", "running"}),
    ("reporting", {"analysis", "plots"}),
]


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """tem_lib module -> the tem_lib modules it imports (anywhere in the file, inside functions
    too: a lazy import is still an arrow)."""
    mods = {}
    for p in root.rglob("*.py"):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    edges = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m.split(".") if p.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg[:len(pkg) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                if len(subs) == len(node.names):  # from PKG import submodule, ...: those modules only
                    edges[m].update(subs)
                elif target in mods:
                    edges[m].update([target, *subs])
            elif isinstance(node, ast.Import):
                edges[m].update(a.name for a in node.names if a.name in mods)
        edges[m].discard(m)
    return edges


def _floor(module: str) -> int:
    top = module.split(".")[1] if "." in module else None
    if top is None:
        return len(FLOORS)  # the package itself sits above everything
    for k, (_, members) in enumerate(FLOORS):
        if top in members:
            return k
    raise AssertionError(f"{module}: its package {top!r} is on no floor of docs/ARCHITECTURE.md; add it there "
                         "and to FLOORS")


def _cycle(edges):
    state, stack = {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(edges[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (c := visit(w)):
                return c
        state[v] = 2
        stack.pop()
        return None
    for v in sorted(edges):
        if v not in state and (c := visit(v)):
            return c
    return None


def test_no_import_cycle():
    assert _cycle(module_graph()) is None, " -> ".join(_cycle(module_graph()))


def test_imports_point_down_the_floors():
    up = [f"{a} ({FLOORS[_floor(a)][0]}) imports {b} ({FLOORS[_floor(b)][0]})"
          for a, bs in module_graph().items() for b in bs if _floor(b) > _floor(a)]
    assert not up, "upward imports:\n" + "\n".join(sorted(up))


def test_the_walker_sees_cycles_and_lazy_imports(tmp_path):
    pkg = tmp_path / "tem_lib"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "utils.py").write_text("def f():\n    from .data import io\n")
    (pkg / "data" / "__init__.py").write_text("from .io import load\n")
    (pkg / "data" / "io.py").write_text("from ..utils import f\n")
    edges = module_graph(pkg)
    assert edges["tem_lib.utils"] == {"tem_lib.data.io"} and edges["tem_lib.data"] == {"tem_lib.data.io"}
    assert _cycle(edges) in (["tem_lib.data.io", "tem_lib.utils", "tem_lib.data.io"],
                             ["tem_lib.utils", "tem_lib.data.io", "tem_lib.utils"])
    with pytest.raises(AssertionError):
        assert not [1 for a, bs in edges.items() for b in bs if _floor(b) > _floor(a)]


def test_modules_stay_readable_in_one_sitting():
    long = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines (split them by role): {long}"
