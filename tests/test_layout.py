"""The package's layout holds: stages import one way (wtypes <- deploy <- training <-
pipeline <- book <- cli), there is no import circle (function-level imports counted),
and no module grows past 350 lines."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "bitnetlib"
STAGES = ("bitnetlib.wtypes", "bitnetlib.deploy", "bitnetlib.training", "bitnetlib.pipeline",
          "bitnetlib.book", "bitnetlib.cli")


def modules() -> dict:
    out = {}
    for p in ROOT.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def import_graph() -> dict:
    mods, graph = modules(), {}
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1] if node.level else []
                mod = ".".join(base + [node.module] if node.module else base)
                deps |= {f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod
                         for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def stage(name: str) -> int:
    return next(i for i, s in enumerate(STAGES) if name == s or name.startswith(s + "."))


def test_stages_import_one_way():
    graph = import_graph()
    upward = [(n, d) for n, ds in graph.items() if n != "bitnetlib"
              for d in ds if d != "bitnetlib" and stage(d) > stage(n)]
    assert not upward


def test_no_import_circle():
    graph, state, circles = import_graph(), {}, []

    def visit(n, path):
        state[n] = "open"
        for d in sorted(graph[n]):
            if state.get(d) == "open":
                circles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[n] = "done"
    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not circles


def test_modules_stay_small():
    sizes = {name: len(p.read_text().splitlines()) for name, p in modules().items()}
    assert max(sizes.values()) <= 350, {k: v for k, v in sizes.items() if v > 350}
