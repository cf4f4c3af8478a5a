"""The package's import structure: no circle, no private name crossing a module, imports at the top."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cwl_lib"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = (path, ast.parse(path.read_text()))
    return out


def _target(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, (path, tree) in mods.items():
        is_package = path.name == "__init__.py"
        for node in tree.body:  # module-level imports make the import-time graph
            if isinstance(node, ast.ImportFrom):
                target = _target(name, node, is_package)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    graph[name].add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name.startswith("cwl_lib"))
    return {m: {t for t in targets if t in mods and t != m} for m, targets in graph.items()}


def _cycle(graph):
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                return stack[stack.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_circle_of_imports():
    graph = _graph()
    # a package importing its own submodules is not a circle through them
    for m in graph:
        graph[m] = {t for t in graph[m] if not (t.startswith(m + ".") and _modules()[m][0].name == "__init__.py")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_a_circle_is_found_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_private_name_is_imported_from_another_module():
    offenders = []
    for name, (path, tree) in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("cwl_lib")):
                offenders += [f"{name}: {alias.name}" for alias in node.names
                              if alias.name.startswith("_") and not alias.name.startswith("__")]
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.startswith("_") \
                    and not node.attr.startswith("__") and node.value.id in {"transfer", "pruning", "weighting", "records",
                                                                              "retrieval", "executor", "study"}:
                offenders.append(f"{name}: {node.value.id}.{node.attr}")
    assert not offenders, offenders


def test_imports_sit_at_module_top_unless_a_comment_says_why():
    late = []
    for name, (path, tree) in _modules().items():
        lines = path.read_text().splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        here = lines[inner.lineno - 1]
                        above = lines[inner.lineno - 2].strip() if inner.lineno > 1 else ""
                        if "#" not in here and "#" not in above:
                            late.append(f"{name}:{inner.lineno}")
    assert not late, late


def test_importing_the_package_and_its_executor_does_not_import_ray():
    import subprocess
    import sys
    code = ("import sys, cwl_lib, cwl_lib.executor, cwl_lib.studies, cwl_lib.reproduce, cwl_lib.cli, cwl_lib.dryrun; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
