"""The memory API behind ``MemoryClient``: single memories, their versions, export, users.

- :mod:`.params`: validation of the API's parameters (pure, ``InvalidInput(field, ...)``);
- :mod:`.versions`: what an edit writes, what a soft delete leaves, how history reads (pure);
- :mod:`.edits`: list, get, update, delete and history of one user's memories (I/O, under the
  user's lease for writes);
- :mod:`.export_format`: the JSONL export format both ways (pure; ``docs/export-format.md``);
- :mod:`.export`: ``export_user`` / ``import_user`` (I/O);
- :mod:`.users`: ``list_users`` for operators (I/O);
- :mod:`.ports`: what these need from a process (:class:`memlane.services.MemoryServices` is one).

This layer sits beside ``retrieval``: it imports the core, ``text``, ``llm``, ``store`` and
``buffer``, never the top modules, so it takes a :class:`.ports.MemoryServices` protocol.
"""
