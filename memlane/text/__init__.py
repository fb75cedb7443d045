"""Pure language processing: CJK-aware tokens and language (:mod:`.tokens`), and time
expressions in Chinese and English (:mod:`.timeparse`, with its word tables in :mod:`.timewords`).

Nothing here does I/O or reads the clock unless asked. The stores tokenise with it, so it sits
below ``memlane.store``, ``memlane.buffer`` and ``memlane.retrieval``.
"""
