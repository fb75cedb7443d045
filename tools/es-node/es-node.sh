#!/usr/bin/env bash
# memlane: run a real single-node Elasticsearch 8.x (built from Maven Central jars) without Docker.
#
#   es-node.sh build   build tools/es-node (mvn package) unless it is up to date
#   es-node.sh up      build if needed, start a node in the background, wait until it is healthy,
#                      print exactly one line on stdout: ES_URL=http://127.0.0.1:<port>
#   es-node.sh down    stop the node (TERM, then KILL), remove its temp dir and the state
#   es-node.sh url     print the ES_URL line if the node is running and healthy (exit 1 otherwise)
#
# Env: ES_PORT (HTTP port, default: a free one), ES_NODE_STATE (state dir, default $REPO/.es-node),
#      ES_JAVA_HOME (JDK to use), ES_JAVA_OPTS (extra JVM options), ES_START_TIMEOUT (seconds, default 120).
# Everything except the ES_URL line goes to stderr; the node's own log is <tmp dir>/node.log.
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
state_get() { [[ -f "$STATE/$1" ]] && cat "$STATE/$1" || true; }

node_alive() { # pid -> true if it is our java process
    local pid="$1"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "$MAIN_CLASS"
}

healthy() { # port -> true if the cluster is at least yellow
    curl -fsS --max-time 5 "http://127.0.0.1:$1/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1
}

running_url() {
    local pid port
    pid="$(state_get pid)"; port="$(state_get port)"
    if [[ -n "$port" ]] && node_alive "$pid" && healthy "$port"; then
        echo "ES_URL=http://127.0.0.1:$port"
        return 0
    fi
    return 1
}

stop_node() {
    local pid pgid tmp i
    pid="$(state_get pid)"; pgid="$(state_get pgid)"; tmp="$(state_get tmpdir)"
    pgid="${pgid:-$pid}"
    if node_alive "$pid"; then
        log "stopping node pid $pid (process group $pgid)"
        kill -TERM -- "-$pgid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do   # up to 30 s for a clean close
            node_alive "$pid" || break
            sleep 0.1
        done
        if node_alive "$pid"; then
            log "node did not stop after TERM; sending KILL"
            kill -KILL -- "-$pgid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 100; i++)); do node_alive "$pid" || break; sleep 0.1; done
        fi
    fi
    # anything else left in the group (there should be nothing)
    if [[ -n "$pgid" ]] && pgrep -g "$pgid" >/dev/null 2>&1; then
        kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
    if [[ -n "$tmp" && -d "$tmp" && "$(basename "$tmp")" == memlane-es.* ]]; then
        rm -rf -- "$tmp"
    fi
    rm -f "$STATE/pid" "$STATE/pgid" "$STATE/port" "$STATE/tmpdir" "$STATE/log" "$STATE/url"
}

with_lock() {
    mkdir -p "$STATE"
    [[ -f "$STATE/.gitignore" ]] || echo '*' > "$STATE/.gitignore"   # runtime state, never committed
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$STATE/lock"
        flock -w 300 9 || die "could not lock $STATE/lock"
    fi
}

# --- commands ----------------------------------------------------------------------------------
cmd_up() {
    with_lock
    if running_url; then return 0; fi
    if [[ -n "$(state_get pid)$(state_get tmpdir)" ]]; then
        log "cleaning up a stale node from $STATE"
        stop_node
    fi
    cmd_build

    local tmp port_arg pid pgid start deadline port="" url
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/memlane-es.XXXXXX")"
    mkdir -p "$tmp/home" "$tmp/jtmp"
    port_arg="${ES_PORT:-0}"
    echo "$tmp" > "$STATE/tmpdir"
    echo "$tmp/node.log" > "$STATE/log"

    # shellcheck disable=SC2086
    setsid nohup "$JAVA" \
        -Xms512m -Xmx1g -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -XX:-OmitStackTraceInFastThrow \
        -Djava.io.tmpdir="$tmp/jtmp" -Dfile.encoding=UTF-8 -Djava.awt.headless=true \
        -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true \
        -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0 \
        ${ES_JAVA_OPTS:-} \
        -cp "$HERE/target/classes:$HERE/target/lib/*" "$MAIN_CLASS" \
        "$port_arg" "$tmp/home" "$tmp/http.port" \
        > "$tmp/node.log" 2>&1 < /dev/null 9>&- &
    pid=$!
    echo "$pid" > "$STATE/pid"
    pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' || true)"
    echo "${pgid:-$pid}" > "$STATE/pgid"
    log "started node pid $pid (JDK $JAVA_HOME_SEL), log $tmp/node.log"

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
    log "---- tail of $tmp/node.log ----"
    tail -n 60 "$tmp/node.log" >&2 || true
    stop_node
    exit 1
}

cmd_down() {
    with_lock
    stop_node
    log "down"
}

cmd_url() {
    running_url || die "no healthy node (state $STATE)"
}

case "${1:-}" in
    build) cmd_build ;;
    up) cmd_up ;;
    down) cmd_down ;;
    url) cmd_url ;;
    *) echo "usage: $0 {build|up|down|url}" >&2; exit 2 ;;
esac
