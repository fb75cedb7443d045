"""Import direction memlane <- pipelines <- tasks <- worker/service; inside memlane, a declared
order of sub-packages; inside tasks, no task module imports another; no celery below tasks.

``service`` (the HTTP and MCP surface) sits on the top floor beside ``worker`` and imports only
``memlane``; ``worker`` may import it (``memlane serve`` is a command of the CLI).

The layers of ``memlane/`` (each may import itself and the layers it lists, nothing else)::

    core       config, config_sections, constants, errors, models, ids, logging, log_filters,
               redaction, backoff, validation, datadir, timing, metrics, tracing, blas (the
               ground-floor modules)
    text       memlane/text       <- core
    llm        memlane/llm        <- core
    store      memlane/store      <- core, text (the stores tokenise; fusion lives here)
    buffer     memlane/buffer     <- core, text, llm (usage counts an llm.Usage)
    retrieval  memlane/retrieval  <- core, text, llm, store, buffer
    memories   memlane/memories   <- core, text, llm, store, buffer (the memory API: list, get,
                                     edit, delete, history, export, users)
    top        client, memory_chat, importer, services, exporter and the package itself
                                     <- everything

Fusion (``memlane.store.fusion``) and tokenisation (``memlane.text``) sit below retrieval because
the stores use them; that is what keeps this graph acyclic.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "memlane": {"memlane"},
    "pipelines": {"memlane", "pipelines"},
    "tasks": {"memlane", "pipelines", "tasks"},
    "worker": {"memlane", "tasks", "worker", "service"},
    "service": {"memlane", "service"},
}
PROJECT = set(ALLOWED)

CORE = {
    "blas",
    "config",
    "config_sections",
    "constants",
    "errors",
    "models",
    "ids",
    "logging",
    "log_filters",
    "redaction",
    "backoff",
    "validation",
    "datadir",
    "timing",
    "metrics",
    "tracing",
}
TOP = {"__init__", "client", "memory_chat", "importer", "services", "exporter"}
MEMLANE_LAYERS: dict[str, set[str]] = {
    "core": set(),
    "text": {"core"},
    "llm": {"core"},
    "store": {"core", "text"},
    "buffer": {"core", "text", "llm"},
    "retrieval": {"core", "text", "llm", "store", "buffer"},
    "memories": {"core", "text", "llm", "store", "buffer"},
    "top": {"core", "text", "llm", "store", "buffer", "retrieval", "memories"},
}
# The one module of tasks/ that the task modules may import: the app, its wiring, sending.
TASKS_SHARED = "tasks.app"


def _modules(path: Path) -> set[str]:
    """Every absolute module an import in ``path`` names (``from a.b import c`` gives a.b and
    a.b.c, since c may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _modules(path)}


def _memlane_layer(module: str) -> str | None:
    """The layer of ``memlane.x.y``, or None for a name that is not a memlane module."""
    parts = module.split(".")
    if parts[0] != "memlane" or len(parts) == 1:
        return None  # ``from memlane import x``: x is what is imported, checked on its own
    head = parts[1]
    if head in MEMLANE_LAYERS and head not in {"core", "top"}:
        return head
    if head in CORE:
        return "core"
    if head in TOP:
        return "top"
    return None


def _layer_of_file(path: Path) -> str:
    rel = path.relative_to(ROOT / "memlane")
    name = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    layer = _memlane_layer(f"memlane.{name}")
    assert layer is not None, f"memlane/{rel} belongs to no declared layer: add it to the test"
    return layer


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below(package: str) -> None:
    """Each package imports only itself and the packages below it."""
    bad = {}
    for path in (ROOT / package).rglob("*.py"):
        project_imports = _imports(path) & PROJECT
        if project_imports - ALLOWED[package]:
            bad[str(path.relative_to(ROOT))] = sorted(project_imports - ALLOWED[package])
    assert bad == {}


@pytest.mark.parametrize("package", ["memlane", "pipelines", "service"])
def test_no_celery_below_tasks(package: str) -> None:
    """The core library, the pipelines and the service never import celery or kombu."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / package).rglob("*.py")
        if _imports(p) & {"celery", "kombu"}
    ]
    assert offenders == []


def test_the_memlane_layers_form_no_cycle() -> None:
    """The declared order of memlane's sub-packages is a DAG (each layer only looks down)."""
    try:
        order = list(TopologicalSorter(MEMLANE_LAYERS).static_order())
    except CycleError as e:  # pragma: no cover - the assertion below names it
        pytest.fail(f"the declared memlane layers have a cycle: {e}")
    assert order[0] == "core" and order[-1] == "top"


def test_every_memlane_module_imports_only_its_layer_and_those_below() -> None:
    """Inside memlane, imports follow MEMLANE_LAYERS; every module belongs to a layer."""
    bad = {}
    for path in (ROOT / "memlane").rglob("*.py"):
        layer = _layer_of_file(path)
        allowed = MEMLANE_LAYERS[layer] | {layer}
        used = {_memlane_layer(m) for m in _modules(path)} - {None}
        if used - allowed:
            bad[str(path.relative_to(ROOT))] = sorted(str(u) for u in used - allowed)
    assert bad == {}


def test_no_task_module_imports_another_task_module() -> None:
    """A task shell reaches other tasks by name through tasks.app, never by importing them, so
    walking a consolidation from its task down never climbs back up a floor."""
    bad = {}
    for path in (ROOT / "tasks").glob("*.py"):
        own = f"tasks.{path.stem}"
        if own in {TASKS_SHARED, "tasks.__init__"}:
            continue
        sideways = (
            {m for m in _modules(path) if m.split(".")[0] == "tasks" and m != "tasks"}
            - {TASKS_SHARED}
            - {f"{TASKS_SHARED}.{n}" for n in _names(path, TASKS_SHARED)}
        )
        if sideways:
            bad[own] = sorted(sideways)
    assert bad == {}


def test_the_consolidation_task_walks_only_down() -> None:
    """Everything the consolidation task imports, transitively, lies on its floor or below:
    tasks.app, pipelines and memlane; nothing under tasks/ but tasks.app, nothing of worker/."""
    seen: set[str] = set()
    todo = ["tasks.consolidation"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _file_of(module)
        if path is not None:
            todo += [m for m in _modules(path) if _file_of(m) is not None]
    project = {m for m in seen if m.split(".")[0] in PROJECT}
    assert {m for m in project if m.startswith("tasks.")} == {"tasks.consolidation", "tasks.app"}
    assert not {m for m in project if m.startswith("worker")}
    assert "pipelines.consolidation.run" in project and "memlane.buffer.lease" in project


def _names(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == module
        for a in node.names
    }


def _file_of(module: str) -> Path | None:
    """The source file of a project module (package or module), or None."""
    if module.split(".")[0] not in PROJECT:
        return None
    base = ROOT.joinpath(*module.split("."))
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None
