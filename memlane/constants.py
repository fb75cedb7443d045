"""Names shared across processes: Redis key layouts, queue names, index names."""

from __future__ import annotations

# Celery queues.
QUEUE_CONSOLIDATE = "consolidate"
QUEUE_REFLECT = "reflect"
QUEUE_MAINTENANCE = "maintenance"
# Dispatch and the nightly fan-out: short tasks that must never wait behind a consolidation,
# so memlane up (and a deployment) runs a small worker of their own on this queue.
QUEUE_CONTROL = "control"
ALL_QUEUES = (QUEUE_CONSOLIDATE, QUEUE_REFLECT, QUEUE_MAINTENANCE, QUEUE_CONTROL)

# Redis keys, all under the configured prefix; ``{u}`` is the user id. Every per-user key
# embeds the user id verbatim inside a hash tag so one user's keys stay together on a cluster.
KEY_STREAM = "{p}:turns:{{{u}}}"  # per-user stream of buffered turns
KEY_TURN_IDS = "{p}:turnids:{{{u}}}"  # set of turn ids seen in the buffer (idempotency)
KEY_PENDING = "{p}:pending"  # zset: user -> oldest buffered turn arrival (ms)
KEY_LAST_PUSH = "{p}:lastpush"  # hash: user -> last push arrival (ms)
KEY_WATERMARK = "{p}:watermark"  # hash: user -> last consolidated stream id
KEY_LEASE = "{p}:lease:{{{u}}}"  # per-user lease: "token"
KEY_TOMBSTONE = "{p}:forgotten:{{{u}}}"  # "<fencing token> <ms>" of the user's last forget
KEY_WRITES = "{p}:writes:{{{u}}}"  # hash: token -> "<ms> <JSON memory ids>" being written
KEY_SWEEPS = "{p}:sweeps"  # zset: forgotten user -> when (ms) to sweep stray writes again
KEY_FENCE = "{p}:fence"  # counter issuing fencing tokens
KEY_EXTRACTION = "{p}:extraction:{b}"  # cached LLM extraction for batch b
KEY_DEAD = "{p}:dead"  # hash: batch id -> JSON dead letter
KEY_ATTEMPTS = "{p}:attempts"  # hash: batch id -> "attempts so far|worker of the last one"
KEY_STOPPED_WORKERS = "{p}:stoppedworkers"  # zset: worker id -> when it was stopped on purpose
KEY_USAGE = "{p}:usage:{d}"  # hash per day: "user|model|field" -> tokens
KEY_UNREFLECTED = "{p}:unreflected"  # zset: user -> unreflected observation count
KEY_LLM_CHECKS = "{p}:llmchecks"  # hash: "model|check" -> model outputs refused or repaired
# Beat and task markers. Their strings predate the named Keys methods (they all began with
# "schedlock:"); they are kept so that a marker set by the previous version still counts.
KEY_NIGHT_CLAIM = "{p}:schedlock:{j}:{n}"  # job j (reflect, maintain) claimed night n
KEY_NIGHT_USERS = "{p}:schedlock:{j}:{n}:users"  # list: the users job j hands out on night n
KEY_NIGHT_WAVE = "{p}:schedlock:{j}:{n}:wave:{o}"  # the wave at offset o was handed out
KEY_EARLY_REFLECTION = "{p}:schedlock:reflect-early:{u}"  # an early reflection is on its way
KEY_TASK_STATUS = "{p}:taskstatus:{t}"  # JSON: how lifecycle task t ended (memlane reflect --wait)
KEY_LLM_FORMAT = "{p}:llmformat:{v}"  # the structured output provider v takes (llm.formats)
# Provider limits (buffer/provider_limits.py): one sliding window per provider key k.
KEY_LIMIT_WINDOW = "{p}:limit:{{{k}}}:window"  # zset: grant id -> admission time (ms)
KEY_LIMIT_TOKENS = "{p}:limit:{{{k}}}:tokens"  # hash: grant id -> reserved tokens, "_sum"
KEY_USERS = "{p}:users"  # set of every user id ever seen (for stats and sweeps)
# HTTP service (service/apikeys.py): keys are stored only as the sha256 of the key.
KEY_API_KEY = "{p}:apikey:{h}"  # hash per key (by sha256): id, tenant, limits, token bucket
KEY_API_KEYS = "{p}:apikeys"  # hash: key id -> JSON description (tenant, label, sha256)

# Forgetting. A tombstone outlives any plausible pause of a worker that held the user's lease
# before the forget (it names the user id, nothing else). Writes in flight at the forget are
# swept again for a while, in case their worker died before it could undo them.
TOMBSTONE_TTL_S = 7 * 24 * 3600
STRAY_WRITE_GRACE_S = 120.0
STRAY_WRITE_SWEEP_S = 5.0

# Elasticsearch. Version 2 routes by a digest of the user id (version 1 used the raw id, which
# breaks for ids with commas on a multi-shard index); version 3 holds the BM25 tokens of
# memlane.text.tokens.TOKENIZER_VERSION 2 (Chinese words instead of characters + bigrams).
# See ElasticsearchStore.ensure_schema and `memlane migrate-index`.
ES_INDEX_VERSION = 3

# Celery task names: the tasks' own names, their routes, and what tasks send each other by.
TASK_CONSOLIDATE = "memlane.consolidate"
TASK_DISPATCH = "memlane.dispatch"
TASK_REPLAY = "memlane.replay"
TASK_REFLECT = "memlane.reflect"
TASK_REFLECT_NIGHTLY = "memlane.reflect_nightly"
TASK_NIGHTLY_WAVE = "memlane.nightly_wave"
TASK_MAINTAIN = "memlane.maintain"
TASK_HOUSEKEEP = "memlane.housekeep"
