"""The house rules of shared/DESIGN.md, checked on the code's own imports and syntax trees.

- One direction between domains: datasets <- annotations <- embeddings <- labeling <- training <- exports.
  `common` knows no domain; `jobs` and `pipeline` know none but what they are given.
- No import cycle between modules (function-level imports count too).
- api/ shapes HTTP only: no ORM query in it beyond the scoping base class.
- workers/ only wraps tasks: no models, selectors, ORM or HTTP layer.
- Size: no module of imagestudio/ over 400 lines (migrations aside), no function over 50 lines.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ("datasets", "annotations", "embeddings", "labeling", "training", "exports", "demo")
# Infrastructure every domain may use; it may use no domain (pipeline and jobs take what they need as arguments).
INFRASTRUCTURE = ("common", "jobs", "pipeline", "accounts")
ORM_CALLS = {"objects", "_default_manager", "filter", "exclude", "annotate", "aggregate", "select_related",
             "prefetch_related", "values_list", "order_by", "get_or_create", "update_or_create", "bulk_create",
             "select_for_update", "raw"}
ORM_NAMES = {"Prefetch", "Q", "F", "Count", "Exists", "OuterRef", "Subquery", "get_object_or_404"}


def _python_files(folder):
    return [p for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts]


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """Every module `path` imports, at any depth of its code, resolved to absolute names."""
    tree = ast.parse(path.read_text())
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _area(module):
    """The domain or infrastructure part of imagestudio a module belongs to (None outside them)."""
    parts = module.split(".")
    if parts[0] != "imagestudio" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in DOMAINS + INFRASTRUCTURE else None


def _domain_graph():
    edges = []
    for path in _python_files("imagestudio"):
        source = _module_name(path)
        for target in _imports(path):
            a, b = _area(source), _area(target)
            if a and b and a != b:
                edges.append((source, a, target, b))
    return edges


def test_domains_depend_only_upstream():
    wrong = [f"{source} imports {target}" for source, a, target, b in _domain_graph()
             if a in DOMAINS and b in DOMAINS and DOMAINS.index(b) > DOMAINS.index(a)]
    assert wrong == []


def test_infrastructure_knows_no_domain():
    wrong = [f"{source} imports {target}" for source, a, target, b in _domain_graph()
             if a in INFRASTRUCTURE and (b in DOMAINS or (a == "common" and b != "common"))]
    assert wrong == []


def test_no_module_import_cycles():
    modules = {_module_name(p): p for folder in ("imagestudio", "api", "workers") for p in _python_files(folder)}
    graph = {name: {t for t in _imports(path) if t in modules and t != name} for name, path in modules.items()}
    # Packages (__init__) only gather their modules; an edge into a package is not a dependency on its children.
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert cycles == []


def _orm_import(node):
    """Query machinery (django.db.models, transactions, connections, shortcuts); the database's exception
    classes are fine: the error handler maps them to HTTP answers."""
    module = node.module or ""
    names = {alias.name for alias in node.names}
    return (module.startswith(("django.db.models", "django.shortcuts"))
            or (module == "django.db" and bool(names & {"models", "transaction", "connection", "connections"})))


def _orm_uses(path):
    tree = ast.parse(path.read_text())
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ORM_CALLS:
            uses.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in ORM_NAMES:
            uses.append(f"{path.name}:{node.lineno} {node.id}")
        elif isinstance(node, ast.ImportFrom) and _orm_import(node):
            uses.append(f"{path.name}:{node.lineno} imports {node.module}")
    return uses


def test_api_holds_no_orm_query():
    scoping = ROOT / "api" / "scoping.py"  # the base class owns the scoped lookups
    uses = [use for path in _python_files("api") if path != scoping for use in _orm_uses(path)]
    assert uses == []


def test_workers_only_wrap_domain_services():
    """Tasks take ids and call services: no models, selectors, ORM or HTTP layer in workers/."""
    wrong = [f"{path.name} imports {target}" for path in _python_files("workers") for target in _imports(path)
             if target.startswith(("api", "django.db")) or ".models" in target or ".selectors" in target]
    assert wrong == []


@pytest.mark.parametrize("folder", ["imagestudio", "api", "workers"])
def test_modules_and_functions_stay_small(folder):
    too_long = []
    for path in _python_files(folder):
        source = path.read_text()
        if folder == "imagestudio" and len(source.splitlines()) > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 50:
                too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert too_long == []


def test_the_checks_see_violations(tmp_path):
    """The walkers find what they are meant to find (so an empty result means something)."""
    sample = tmp_path / "view.py"
    sample.write_text("from django.db.models import Q\n\ndef f(model):\n    return model.objects.filter(Q(x=1))\n")
    assert len(_orm_uses(sample)) == 4
    assert _area("imagestudio.training.services") == "training" and _area("imagestudio.settings") is None
