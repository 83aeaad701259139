"""Check the source layout: no include cycle between the C core's modules,
no import cycle between the Python package's modules, and no file longer
than the limit of its kind.

    python tools/layout.py            # prints the module graph; exit 1 on a problem

A C module is a directory's files that share a name before the first
underscore (core/conn.c, core/conn_read.c, core/conn_int.h and core/conn.h
are the module core/conn); an edge is an #include "..." of another
module's header.  A Python edge is an import of another module of
src/chirp (``from . import x``, ``from .x import y``, ``import chirp.x``),
at any depth of the file, deferred imports too.  The limits: C files
700 lines, Python modules 600 (the tests' scenario files aside).
"""

from __future__ import annotations

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
C_LIMIT = 700
PY_LIMIT = 600
PY_DIRS = ["src/chirp", "bench", "tests/support", "tools"]
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
PKG = os.path.join(ROOT, "src", "chirp")


def module_of(path: str) -> str:
    """The module of a file below csrc/ ("core/conn" for core/conn_read.c)."""
    rel = os.path.relpath(path, CSRC)
    folder, name = os.path.split(rel)
    return f"{folder}/{name.split('.')[0].split('_')[0]}"


def _resolve(include: str, including: str) -> str | None:
    """The file an #include "..." names, as the build finds it."""
    for base in (os.path.dirname(including), os.path.join(CSRC, "include"), CSRC):
        path = os.path.normpath(os.path.join(base, include))
        if os.path.isfile(path):
            return path
    return None


def c_files() -> list[str]:
    """Every .c and .h file below csrc/."""
    out = []
    for folder, _dirs, files in os.walk(CSRC):
        out += [os.path.join(folder, f) for f in files if f.endswith((".c", ".h"))]
    return sorted(out)


def module_graph() -> dict[str, set[str]]:
    """module -> the modules whose headers it includes."""
    graph: dict[str, set[str]] = {}
    for path in c_files():
        mod = module_of(path)
        deps = graph.setdefault(mod, set())
        with open(path) as f:
            for inc in _INCLUDE.findall(f.read()):
                target = _resolve(inc, path)
                if target is not None and module_of(target) != mod:
                    deps.add(module_of(target))
    return graph


def python_graph() -> dict[str, set[str]]:
    """chirp's module -> the modules of chirp it imports."""
    import ast

    names = {f[:-3] for f in os.listdir(PKG) if f.endswith(".py")}
    graph: dict[str, set[str]] = {}
    for name in sorted(names):
        with open(os.path.join(PKG, name + ".py")) as f:
            tree = ast.parse(f.read())
        deps = graph.setdefault(name, set())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:  # from .x import y
                    deps.add(node.module.split(".")[0])
                else:  # from . import x, y
                    deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chirp."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("chirp."))
        deps &= names
        deps.discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def long_files() -> list[str]:
    """Files over their limit, as "path: N lines (limit L)"."""
    out = []
    for path in c_files():
        n = sum(1 for _ in open(path))
        if path.endswith(".c") and n > C_LIMIT:
            out.append(f"{os.path.relpath(path, ROOT)}: {n} lines (limit {C_LIMIT})")
    for d in PY_DIRS:
        for folder, _dirs, files in os.walk(os.path.join(ROOT, d)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    n = sum(1 for _ in open(path))
                    if n > PY_LIMIT:
                        rel = os.path.relpath(path, ROOT)
                        out.append(f"{rel}: {n} lines (limit {PY_LIMIT})")
    return out


def main() -> int:
    graph = module_graph()
    for mod in sorted(graph):
        print(f"{mod} -> {', '.join(sorted(graph[mod])) or '-'}")
    py = python_graph()
    for mod in sorted(py):
        print(f"chirp.{mod} -> {', '.join(sorted(py[mod])) or '-'}")
    problems = [f"include cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    problems += [f"import cycle: {' <-> '.join(c)}" for c in cycles(py)]
    problems += long_files()
    for p in problems:
        print(p, file=sys.stderr)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
