"""Import direction memlane <- pipelines <- tasks <- worker/service; no celery below tasks.

``service`` (the HTTP and MCP surface) sits on the top floor beside ``worker`` and imports only
``memlane``; ``worker`` may import it (``memlane serve`` is a command of the CLI).
"""

from __future__ import annotations

import ast
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


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


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
