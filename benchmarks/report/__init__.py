"""Regenerate docs/PERFORMANCE.md and the plots in docs/img/ from benchmarks/results/*.json.

Every figure in the document comes from a results file; nothing is written by hand. Sections
whose results file is missing say so.

One module per section (``recall``, ``modes``, ``store``, ``retrieval``, ``ingest``,
``cost``, ``llm_bench``, ``scaling``, ``guard``, ``goals``, ``plots``), each a function from
typed results documents (``schema``, ``schema_system``, ``schema_llm``) to Markdown lines;
``document`` assembles them and holds ``main``. Run it with ``python -m benchmarks.report``.
"""

from benchmarks.report.document import main, render, write_report

__all__ = ["main", "render", "write_report"]
