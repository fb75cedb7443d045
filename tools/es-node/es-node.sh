#!/usr/bin/env bash
# memlane: run a real single-node Elasticsearch 8.x (built from Maven Central jars) without Docker.
#
#   es-node.sh build   build tools/es-node (mvn package) unless it is up to date
#   es-node.sh up      build if needed, start a node in the background, wait until it is healthy,
#                      print exactly one line on stdout: ES_URL=http://127.0.0.1:<port>
#   es-node.sh down    stop the node (TERM, then KILL), remove its temp dir and the state
#   es-node.sh url     print the ES_URL line if the node is running and healthy (exit 1 otherwise)
#
# A cluster of N nodes (ES_NODES=N, N >= 2): node 0 is the only master-eligible node (and holds
# data), nodes 1..N-1 are data-only, so losing any of them never needs a master election.
#   ES_NODES=2 es-node.sh up   start N nodes that join one cluster; stdout gets two lines:
#                              ES_URLS=<every node's URL, comma-separated> and ES_URL=<node 0's URL>
#   es-node.sh kill I          SIGKILL node I's process group; its data dir and ports are kept
#   es-node.sh start I         restart node I on the same data dir and ports, wait until it joined
#   es-node.sh down / url      stop every node / print both lines if every node is up
# kill/start/down/url find the cluster through the state dir; ES_NODES is only read by `up`.
#
# Env: ES_PORT (HTTP port of node 0, default: a free one), ES_NODE_STATE (state dir, default
#      $REPO/.es-node), ES_JAVA_HOME (JDK to use), ES_JAVA_OPTS (extra JVM options),
#      ES_START_TIMEOUT (seconds, default 120), ES_NODES (default 1), ES_HEAP (heap of each node of
#      a multi-node cluster, default 512m; a single node keeps -Xms512m -Xmx1g).
# Everything except the ES_URL(S) lines goes to stderr; a node's own log is <tmp dir>/node.log.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STATE="${ES_NODE_STATE:-$REPO/.es-node}"
MAIN_CLASS="org.elasticsearch.node.MemlaneEsNode"
TIMEOUT="${ES_START_TIMEOUT:-120}"

log() { echo "es-node: $*" >&2; }
die() { log "$*"; exit 1; }

java_major() { # prints the major version of the given java binary, or nothing
    "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1
}

pick_java_home() {
    if [[ -n "${ES_JAVA_HOME:-}" ]]; then
        [[ -x "$ES_JAVA_HOME/bin/java" ]] || die "ES_JAVA_HOME=$ES_JAVA_HOME has no bin/java"
        echo "$ES_JAVA_HOME"; return
    fi
    local c m
    for c in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-* /usr/lib/jvm/temurin-17-jdk* \
             /usr/lib/jvm/java-21-openjdk-* /usr/lib/jvm/temurin-21-jdk* /usr/lib/jvm/temurin-25-jdk* \
             "${JAVA_HOME:-}"; do
        [[ -n "$c" && -x "$c/bin/java" && -x "$c/bin/javac" ]] || continue
        m="$(java_major "$c/bin/java")"
        [[ -n "$m" && "$m" -ge 17 ]] && { echo "$c"; return; }
    done
    if command -v javac >/dev/null 2>&1; then
        c="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
        m="$(java_major "$c/bin/java")"
        [[ -n "$m" && "$m" -ge 17 ]] && { echo "$c"; return; }
    fi
    die "no JDK >= 17 found (set ES_JAVA_HOME)"
}

JAVA_HOME_SEL="$(pick_java_home)"
JAVA="$JAVA_HOME_SEL/bin/java"

build_stamp() {
    { cat "$HERE/pom.xml"; find "$HERE/src" -type f -print0 | sort -z | xargs -0 cat; } \
        | sha256sum | cut -d' ' -f1
}

cmd_build() {
    local stamp_file="$HERE/target/.memlane-build-stamp" want
    want="$(build_stamp)"
    if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$want" \
          && -f "$HERE/target/classes/org/elasticsearch/node/MemlaneEsNode.class" ]] \
       && compgen -G "$HERE/target/lib/elasticsearch-8*.jar" >/dev/null; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found (apt-get install maven)"
    log "building $HERE (mvn package, JDK $JAVA_HOME_SEL)"
    rm -rf "$HERE/target/lib"
    # Offline first (fast when ~/.m2 is warm), then online (fresh machine: downloads from Maven Central).
    if ! (cd "$HERE" && JAVA_HOME="$JAVA_HOME_SEL" mvn -q -B -Dstyle.color=never -o package >/dev/null 2>&1); then
        (cd "$HERE" && JAVA_HOME="$JAVA_HOME_SEL" mvn -q -B -Dstyle.color=never package >&2) || die "mvn package failed"
    fi
    echo "$want" > "$stamp_file"
}

# --- state -------------------------------------------------------------------------------------
# A single node keeps its state directly in $STATE; node I of a cluster in $STATE/node-I.
state_get() { [[ -f "$1/$2" ]] && cat "$1/$2" || true; }   # dir name

node_alive() { # pid -> true if it is our java process
    local pid="$1"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "$MAIN_CLASS"
}

healthy() { # port [extra query] -> true if the cluster is at least yellow
    curl -fsS --max-time 5 "http://127.0.0.1:$1/_cluster/health?wait_for_status=yellow&timeout=1s${2:-}" >/dev/null 2>&1
}

cluster_size() { state_get "$STATE" nodes; }

running_url() {
    local pid port
    pid="$(state_get "$STATE" pid)"; port="$(state_get "$STATE" port)"
    if [[ -n "$port" ]] && node_alive "$pid" && healthy "$port"; then
        echo "ES_URL=http://127.0.0.1:$port"
        return 0
    fi
    return 1
}

running_cluster_urls() { # prints ES_URLS= and ES_URL= if every node runs and the cluster has them all
    local n i d urls=""
    n="$(cluster_size)"
    [[ -n "$n" ]] || return 1
    for ((i = 0; i < n; i++)); do
        d="$STATE/node-$i"
        node_alive "$(state_get "$d" pid)" || return 1
        urls+="${urls:+,}http://127.0.0.1:$(state_get "$d" port)"
    done
    healthy "$(state_get "$STATE/node-0" port)" "&wait_for_nodes=$n" || return 1
    echo "ES_URLS=$urls"
    echo "ES_URL=${urls%%,*}"
}

kill_group() { # dir signal -> signal the node's process group (or its pid)
    local pid pgid
    pid="$(state_get "$1" pid)"; pgid="$(state_get "$1" pgid)"
    pgid="${pgid:-$pid}"
    [[ -n "$pgid" ]] || return 0
    # Never our own group (a state file from an older launcher may name it): the node alone.
    if [[ "$pgid" == "$(ps -o pgid= -p $$ | tr -d ' ')" ]]; then
        kill "-$2" "$pid" 2>/dev/null || true
        return 0
    fi
    kill "-$2" -- "-$pgid" 2>/dev/null || kill "-$2" "$pid" 2>/dev/null || true
}

wait_dead() { # pid tenths -> true once the process is gone
    local i
    for ((i = 0; i < $2; i++)); do node_alive "$1" || return 0; sleep 0.1; done
    ! node_alive "$1"
}

stop_node() { # dir: TERM (KILL after 30 s), remove the node's temp dir and state files
    local d="$1" pid pgid tmp
    pid="$(state_get "$d" pid)"; pgid="$(state_get "$d" pgid)"; tmp="$(state_get "$d" tmpdir)"
    pgid="${pgid:-$pid}"
    if node_alive "$pid"; then
        log "stopping node pid $pid (process group $pgid)"
        kill_group "$d" TERM
        if ! wait_dead "$pid" 300; then   # up to 30 s for a clean close
            log "node did not stop after TERM; sending KILL"
            kill_group "$d" KILL
            wait_dead "$pid" 100 || true
        fi
    fi
    # anything else left in the group (there should be nothing)
    if [[ -n "$pgid" ]] && pgrep -g "$pgid" >/dev/null 2>&1; then
        kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
    if [[ -n "$tmp" && -d "$tmp" && "$(basename "$tmp")" == memlane-es.* ]]; then
        rm -rf -- "$tmp"
    fi
    rm -f "$d/pid" "$d/pgid" "$d/port" "$d/tport" "$d/tmpdir" "$d/log" "$d/url" "$d/env"
}

with_lock() {
    mkdir -p "$STATE"
    [[ -f "$STATE/.gitignore" ]] || echo '*' > "$STATE/.gitignore"   # runtime state, never committed
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$STATE/lock"
        flock -w 300 9 || die "could not lock $STATE/lock"
    fi
}

launch() { # dir http_port heap_opts: start the JVM on <tmpdir>/home in its own session
    local d="$1" tmp pid pgid envs=()
    tmp="$(state_get "$d" tmpdir)"
    rm -f "$tmp/http.port" "$tmp/transport.port"
    # Per-node discovery settings (ES_SEED_HOSTS etc.), one NAME=value per line.
    [[ -f "$d/env" ]] && mapfile -t envs < "$d/env"
    # shellcheck disable=SC2086
    env "${envs[@]}" setsid nohup "$JAVA" \
        $3 -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow \
        -Djava.io.tmpdir="$tmp/jtmp" -Dfile.encoding=UTF-8 -Djava.awt.headless=true \
        -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true \
        -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0 \
        ${ES_JAVA_OPTS:-} \
        -cp "$HERE/target/classes:$HERE/target/lib/*" "$MAIN_CLASS" \
        "$2" "$tmp/home" "$tmp/http.port" \
        >> "$tmp/node.log" 2>&1 < /dev/null 9>&- &
    pid=$!
    echo "$pid" > "$d/pid"
    # setsid (in the same process: a background job of this script is no group leader) makes
    # the node the leader of a new group whose id is its pid. Reading the group with ps right
    # away raced with setsid and once recorded this script's own group, so a later TERM to
    # "the node's group" killed the caller (the test run).
    echo "$pid" > "$d/pgid"
    wait_exec "$pid"
    log "started node pid $pid (JDK $JAVA_HOME_SEL), log $tmp/node.log"
}

process_ended() { # pid -> true if the process is gone or a zombie
    local state
    state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)"
    [[ -z "$state" || "$state" == Z ]]
}

wait_exec() { # pid -> return once the forked shell has exec'd the node (or ended), at most 30 s
    # Until the child of `&` execs env, its cmdline is this script's, so node_alive is false and
    # a check made then reported "node process exited during start-up" for a node that was
    # about to start (it happened in CI on a busy machine; the node's log was still empty).
    local i
    for ((i = 0; i < 300; i++)); do
        node_alive "$1" && return 0
        process_ended "$1" && return 0
        sleep 0.1
    done
    log "node process $1 did not start java within 30 s"
}

new_node_dir() { # dir -> a fresh temp dir recorded in the node's state
    local tmp
    mkdir -p "$1"
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/memlane-es.XXXXXX")"
    mkdir -p "$tmp/home" "$tmp/jtmp"
    echo "$tmp" > "$1/tmpdir"
    echo "$tmp/node.log" > "$1/log"
}

wait_bound() { # dir deadline -> true once the node wrote its ports (it has started and joined)
    local d="$1" tmp pid
    tmp="$(state_get "$d" tmpdir)"; pid="$(state_get "$d" pid)"
    while ((SECONDS < $2)); do
        node_alive "$pid" || { log "node process exited during start-up"; return 1; }
        if [[ -s "$tmp/http.port" && -s "$tmp/transport.port" ]]; then
            tr -d '[:space:]' < "$tmp/http.port" > "$d/port"
            tr -d '[:space:]' < "$tmp/transport.port" > "$d/tport"
            return 0
        fi
        sleep 0.2
    done
    log "node did not bind within ${TIMEOUT} s"
    return 1
}

fail_tail() { # dir -> print the tail of the node's log
    local logf
    logf="$(state_get "$1" log)"
    log "---- tail of $logf ----"
    tail -n 60 "$logf" >&2 || true
}

# --- commands ----------------------------------------------------------------------------------
cmd_up() {
    with_lock
    if [[ "${ES_NODES:-1}" -gt 1 ]]; then cmd_up_cluster "$ES_NODES"; return; fi
    [[ -z "$(cluster_size)" ]] || die "a cluster is running in $STATE (es-node.sh down first)"
    if running_url; then return 0; fi
    if [[ -n "$(state_get "$STATE" pid)$(state_get "$STATE" tmpdir)" ]]; then
        log "cleaning up a stale node from $STATE"
        stop_node "$STATE"
    fi
    cmd_build

    local tmp pid start deadline port="" url
    new_node_dir "$STATE"
    tmp="$(state_get "$STATE" tmpdir)"
    launch "$STATE" "${ES_PORT:-0}" "-Xms512m -Xmx1g"
    pid="$(state_get "$STATE" pid)"

    start=$SECONDS
    deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! node_alive "$pid"; then
            log "node process exited during start-up"
            break
        fi
        if [[ -z "$port" && -s "$tmp/http.port" ]]; then
            port="$(tr -d '[:space:]' < "$tmp/http.port")"
        fi
        if [[ -n "$port" ]] && healthy "$port"; then
            url="http://127.0.0.1:$port"
            echo "$port" > "$STATE/port"
            echo "ES_URL=$url" > "$STATE/url"
            log "healthy after $((SECONDS - start)) s"
            echo "ES_URL=$url"
            return 0
        fi
        sleep 0.5
    done
    ((SECONDS < deadline)) || log "node not healthy within ${TIMEOUT} s"
    fail_tail "$STATE"
    stop_node "$STATE"
    exit 1
}

cmd_up_cluster() { # n
    local n="$1" i d tmp heap cluster seed deadline start
    if running_cluster_urls; then return 0; fi
    [[ -z "$(state_get "$STATE" pid)" ]] || die "a single node is running in $STATE (es-node.sh down first)"
    stop_all
    cmd_build
    heap="${ES_HEAP:-512m}"
    start=$SECONDS
    deadline=$((SECONDS + TIMEOUT))
    echo "$n" > "$STATE/nodes"
    new_node_dir "$STATE/node-0"
    tmp="$(state_get "$STATE/node-0" tmpdir)"
    cluster="memlane-${tmp##*.}"   # unique, so two clusters on one host never merge
    # Node 0 bootstraps the cluster alone; an empty seed list keeps it from probing 9300-9305.
    printf '%s\n' "ES_CLUSTER_NAME=$cluster" "ES_NODE_NAME=memlane-node-0" "ES_SEED_HOSTS=" \
        "ES_INITIAL_MASTER_NODES=memlane-node-0" "ES_TRANSPORT_PORT=0" > "$STATE/node-0/env"
    launch "$STATE/node-0" "${ES_PORT:-0}" "-Xms$heap -Xmx$heap"
    wait_bound "$STATE/node-0" "$deadline" || { fail_tail "$STATE/node-0"; stop_all; exit 1; }
    seed="127.0.0.1:$(state_get "$STATE/node-0" tport)"
    for ((i = 1; i < n; i++)); do
        d="$STATE/node-$i"
        new_node_dir "$d"
        printf '%s\n' "ES_CLUSTER_NAME=$cluster" "ES_NODE_NAME=memlane-node-$i" \
            "ES_SEED_HOSTS=$seed" "ES_NODE_ROLES=data" "ES_TRANSPORT_PORT=0" > "$d/env"
        launch "$d" 0 "-Xms$heap -Xmx$heap"
    done
    for ((i = 1; i < n; i++)); do
        wait_bound "$STATE/node-$i" "$deadline" || { fail_tail "$STATE/node-$i"; stop_all; exit 1; }
        # A restart reuses the ports the OS gave the first start (clients keep their URLs).
        sed -i "s/^ES_TRANSPORT_PORT=.*/ES_TRANSPORT_PORT=$(state_get "$STATE/node-$i" tport)/" "$STATE/node-$i/env"
    done
    sed -i "s/^ES_TRANSPORT_PORT=.*/ES_TRANSPORT_PORT=$(state_get "$STATE/node-0" tport)/" "$STATE/node-0/env"
    while ((SECONDS < deadline)); do
        if running_cluster_urls; then
            log "cluster $cluster of $n nodes healthy after $((SECONDS - start)) s"
            return 0
        fi
        sleep 0.5
    done
    log "cluster not healthy within ${TIMEOUT} s"
    fail_tail "$STATE/node-0"
    stop_all
    exit 1
}

stop_all() { # every node of a cluster (data nodes first, so the master sees them leave), then state
    local n i
    n="$(cluster_size)"
    for ((i = ${n:-0} - 1; i >= 0; i--)); do stop_node "$STATE/node-$i"; rm -rf "${STATE:?}/node-$i"; done
    rm -f "$STATE/nodes"
}

node_index() { # I -> the state dir of node I of the running cluster
    local n
    n="$(cluster_size)"
    [[ -n "$n" ]] || die "no cluster in $STATE (start one with ES_NODES=N es-node.sh up)"
    [[ "${1:-}" =~ ^[0-9]+$ && "$1" -lt "$n" ]] || die "node index must be 0..$((n - 1)), got '${1:-}'"
    echo "$STATE/node-$1"
}

cmd_kill() { # I
    with_lock
    local d pid
    d="$(node_index "${1:-}")"
    pid="$(state_get "$d" pid)"
    node_alive "$pid" || die "node $1 is not running"
    kill_group "$d" KILL
    wait_dead "$pid" 300 || die "node $1 (pid $pid) survived SIGKILL"
    rm -f "$d/pid" "$d/pgid"
    log "killed node $1 (pid $pid)"
}

cmd_start() { # I
    with_lock
    local d n deadline port
    d="$(node_index "${1:-}")"
    n="$(cluster_size)"
    node_alive "$(state_get "$d" pid)" && die "node $1 is already running"
    deadline=$((SECONDS + TIMEOUT))
    port="$(state_get "$d" port)"
    launch "$d" "$port" "-Xms${ES_HEAP:-512m} -Xmx${ES_HEAP:-512m}"
    wait_bound "$d" "$deadline" || { fail_tail "$d"; exit 1; }
    while ((SECONDS < deadline)); do
        if healthy "$port" "&wait_for_nodes=$n"; then
            log "node $1 rejoined"
            echo "ES_URL=http://127.0.0.1:$port"
            return 0
        fi
        sleep 0.5
    done
    fail_tail "$d"
    die "node $1 did not rejoin within ${TIMEOUT} s"
}

cmd_down() {
    with_lock
    if [[ -n "$(cluster_size)" ]]; then stop_all; else stop_node "$STATE"; fi
    log "down"
}

cmd_url() {
    if [[ -n "$(cluster_size)" ]]; then
        running_cluster_urls || die "the cluster in $STATE is not complete and healthy"
    else
        running_url || die "no healthy node (state $STATE)"
    fi
}

case "${1:-}" in
    build) cmd_build ;;
    up) cmd_up ;;
    down) cmd_down ;;
    url) cmd_url ;;
    kill) cmd_kill "${2:-}" ;;
    start) cmd_start "${2:-}" ;;
    *) echo "usage: $0 {build|up|down|url|kill I|start I}" >&2; exit 2 ;;
esac
