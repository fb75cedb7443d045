"""Maintenance: the long-term sweeps over a user's memories (dedup, contradictions, forgetting)."""
