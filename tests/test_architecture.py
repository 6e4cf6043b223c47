"""The layers point one way: data -> encode -> nn -> kernels; circuit -> backends -> hw; training
and the command line on top. The discrete world (circuit/, backends/, hw/) imports neither torch
nor nn/, and no module imports another that imports it back (lazy imports inside functions count)."""

import ast
from pathlib import Path

import diffgates

SRC = Path(diffgates.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the modules (of diffgates, plus torch) it imports anywhere in its body."""
    graph = {}
    for path in SRC.rglob("*.py"):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
                found.add(target)
                found |= {f"{target}.{alias.name}" for alias in node.names}  # `from . import gates`
        graph[name] = found
    known = set(graph)
    return {m: {i for i in deps if i in known or i.split(".")[0] == "torch"} for m, deps in graph.items()}


def test_the_discrete_world_imports_neither_torch_nor_nn():
    graph = imports()
    for module, deps in graph.items():
        if module.startswith(("diffgates.circuit", "diffgates.backends", "diffgates.hw")):
            bad = {d for d in deps if d.split(".")[0] == "torch" or d.startswith("diffgates.nn")}
            assert not bad, f"{module} imports {sorted(bad)}"


def test_lower_layers_do_not_import_the_training_or_command_line_floors():
    graph = imports()
    top = (
        "diffgates.train",
        "diffgates.cli",
        "diffgates.distill",
        "diffgates.runs",
        "diffgates.bench",
        "diffgates.image",
        "diffgates.interop",
        "diffgates.predict",
    )
    for module, deps in graph.items():
        if module.startswith(("diffgates.circuit", "diffgates.backends", "diffgates.hw", "diffgates.nn")):
            assert not {d for d in deps if d.startswith(top)}, module
        if module.startswith("diffgates.backends"):
            assert not {d for d in deps if d.startswith("diffgates.hw")}, module


def test_there_are_no_import_cycles():
    graph = {m: {d for d in deps if d.startswith("diffgates")} for m, deps in imports().items()}
    # a package's __init__ re-exports its modules; importing a module of a package runs its
    # __init__ first, which is not a dependency of the module itself
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d == m or (m.startswith(d + ".") and d in graph):  # a module's own package
                continue
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
