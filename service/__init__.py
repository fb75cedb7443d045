"""memlane's service surface: the HTTP API (``memlane serve``) and the MCP server (``memlane mcp``).

A top-floor package beside ``worker/``: it imports only :mod:`memlane`. Every route and every
MCP tool is a thin translation of one :class:`memlane.MemoryClient` method; the translation
rules live in one module each:

* :mod:`service.tenancy` turns a tenant's user id into the id the buffer and the store see;
* :mod:`service.errors` maps memlane's error tree to HTTP statuses;
* :mod:`service.body` reads and parses request bodies (400, 413);
* :mod:`service.apikeys` keeps the hashed API keys and the per-key token bucket in Redis.
"""
