"""Reflection: a user's observations -> one versioned insight per subject."""
