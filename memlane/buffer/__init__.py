"""Everything memlane keeps in Redis, and the connection to it.

- :mod:`.turns`: the turn buffer (a stream per user, the pending-users index, watermarks, dead
  letters); :mod:`.raw` makes a buffered turn a raw memory;
- :mod:`.lease`: per-user leases with fencing tokens, heartbeats, tombstones and guarded writes;
  :mod:`.forgetting` undoes what a write of a forgotten user left;
- :mod:`.attempts`, :mod:`.unreflected`, :mod:`.usage`, :mod:`.nightly`,
  :mod:`.extraction_cache`, :mod:`.status`: counters, markers, caches and records;
- :mod:`.keys`: one method per key; :mod:`.lua`: every Lua script;
- :mod:`.connection` and :mod:`.embedded`: the configured server, or the data directory's
  embedded ``redis-server``.

Every Redis failure surfaces as :class:`memlane.errors.RedisUnavailable`.
"""
