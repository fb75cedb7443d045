"""Background memory work as plain functions over injected ports (no Celery here).

Each pipeline is a sub-package with the same two halves, named the same way everywhere:

- ``rules.py``: the pure core (decisions, parsing, planning); no I/O, unit-tested alone;
- ``run.py``: the orchestrator: its ports (a dataclass of what it talks to), its entry function,
  and every read and write, through the ports only.

An orchestrator with more than one entry point keeps the others beside ``run.py``, named for
what they do (``consolidation/replay.py``, ``consolidation/dispatch.py``). The pipelines:
``consolidation`` (turns -> memories), ``extraction`` (its LLM extractor), ``reflection``
(observations -> insights) and ``maintenance`` (the long-term sweeps). Shared by several:
:mod:`.plan` (what a batch changes in the store), :mod:`.pairs` (the one pair classifier),
:mod:`.ports` (chat and usage protocols) and :mod:`.prompts` (every prompt's rendering).
"""
