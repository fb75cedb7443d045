"""Consolidation: a user's buffered turns -> memories, effectively once (see :mod:`.run`)."""
