"""Imports flow one way: site -> benchmarks -> compressors -> probes, and no module imports
itself back through others. Read from the source (every import statement, inside functions too)."""
import ast
from pathlib import Path

from tests.helpers import REPO

PACKAGES = ("benchmarks", "compressors", "probes")
LAYER = {"site": 3, "benchmarks": 2, "compressors": 1, "probes": 0}


def _modules():
    out = {}
    for pkg in (*PACKAGES, "site"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            out[name] = path
    return out


def _imports(path: Path, name: str, mods) -> set[str]:
    """What one module imports: ``import a.b`` -> a.b; ``from pkg import x`` -> pkg.x when x is a
    module, else pkg (importing a submodule does not depend on its package's other contents)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:   # relative import: resolve against this module's package
                pkg = name.split(".")[:-node.level] if not path.name == "__init__.py" else \
                    name.split(".")[:len(name.split(".")) - node.level + 1]
                base = ".".join([*pkg, node.module])
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base)
    return found


def _graph():
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for imp in _imports(path, name, mods):
            parts = imp.split(".")
            for i in range(len(parts), 0, -1):   # the longest prefix that is a project module
                cand = ".".join(parts[:i])
                if cand in mods and cand != name:
                    deps.add(cand)
                    break
        # site/*.py import each other as top-level modules (site is not a package)
        if name.startswith("site."):
            deps |= {f"site.{m}" for m in _imports(path, name, mods) if f"site.{m}" in mods}
        graph[name] = deps
    return graph


def test_lower_layers_never_import_higher_ones():
    wrong = [(a, b) for a, deps in _graph().items() for b in deps
             if LAYER[b.split(".")[0]] > LAYER[a.split(".")[0]]]
    assert not wrong, f"imports against the layering site -> benchmarks -> compressors -> probes: {wrong}"


def test_there_is_no_import_cycle():
    graph = _graph()
    # a package's __init__ finds its method modules by discovery (importlib), not by import
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):   # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"
