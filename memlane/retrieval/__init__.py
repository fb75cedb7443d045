"""Retrieval: what a bot gets back for a query.

- :mod:`.search`: ``retrieve``, the orchestration (time parsing, hybrid search, pending turns,
  boosts, rerank, MMR);
- :mod:`.ranking`: boosts on fused hits, MMR, profile questions (pure);
- :mod:`.pending`: the user's turns still in the buffer (read-your-writes);
- :mod:`.rerank`: the optional rerank step;
- :mod:`.context`: memories as prompt lines (``format_context``, ``format_time``).

Fusion (:mod:`memlane.store.fusion`) and tokenisation (:mod:`memlane.text`) sit below: the
stores use them too.
"""
