#!/bin/bash
# tests/registry-fixture.sh: a throwaway OCI registry for hutch's tests.
#
#   registry-fixture.sh start DIR [USER PASS]   prints 127.0.0.1:PORT once /v2/ answers
#   registry-fixture.sh stop DIR                ends the registry started in DIR
#
# Runs Debian's docker-registry (package docker-registry) bound to 127.0.0.1
# on a free port, storing under DIR. With USER and PASS it requires HTTP
# basic auth from an htpasswd file (bcrypt, made by `htpasswd -B` from the
# package apache2-utils; the registry accepts no other hash). Every wait is
# bounded: at most 50 tries of 0.1 s for the registry to answer.
set -euo pipefail

usage() {
    echo "usage: $0 start DIR [USER PASS] | stop DIR" >&2
    exit 2
}

# True if something accepts connections on 127.0.0.1:$1.
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The HTTP status of GET /v2/ on 127.0.0.1:$1, or nothing.
v2_status() {
    local line
    exec 2>/dev/null # runs in $(...): quiet while the port is still closed
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 0
    printf 'GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$1" >&3
    read -r -t 2 line <&3 || true
    exec 3<&-
    echo "$line" | cut -d' ' -f2
}

free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! listening "$port"; then
            echo "$port"
            return 0
        fi
    done
    echo "registry-fixture: no free port found in 50 tries" >&2
    return 1
}

start() {
    local dir=$1 user=${2:-} pass=${3:-}
    command -v docker-registry >/dev/null || {
        echo "registry-fixture: docker-registry is not installed (apt-get install docker-registry)" >&2
        exit 1
    }
    mkdir -p "$dir/storage"
    dir=$(cd "$dir" && pwd)
    stop "$dir" 2>/dev/null || true
    local port auth="" attempt
    if [ -n "$user" ]; then
        command -v htpasswd >/dev/null || {
            echo "registry-fixture: htpasswd is not installed (apt-get install apache2-utils)" >&2
            exit 1
        }
        htpasswd -Bbn "$user" "$pass" >"$dir/htpasswd"
        auth=$(printf 'auth:\n  htpasswd:\n    realm: hutch-test\n    path: %s/htpasswd\n' "$dir")
    fi
    # A port that looked free may be taken before the registry binds it
    # (tests start registries in parallel): then the registry exits, or
    # another one answers on that port. Up to 5 ports are tried.
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        write_config "$dir" "$port" "$auth"
        if serve "$dir" "$port"; then
            echo "127.0.0.1:$port"
            return 0
        fi
        echo "registry-fixture: attempt $attempt: no registry of ours on 127.0.0.1:$port; its log:" >&2
        cat "$dir/registry.log" >&2
        stop "$dir"
    done
    return 1
}

write_config() {
    cat >"$1/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $1/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$2
$3
YAML
}

# True once the registry started here answers /v2/ on 127.0.0.1:$2, and
# the socket listening there is its own (not another test's registry).
serve() {
    local dir=$1 port=$2 pid
    # setsid: the registry outlives this script but not `stop`.
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/registry.pid"
    for _ in $(seq 1 50); do
        case "$(v2_status "$port")" in
        200 | 401)
            ss -Hltnp "sport = :$port" | grep -q "pid=$pid," && return 0
            ;;
        esac
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

stop() {
    local dir=$1 pid
    [ -f "$dir/registry.pid" ] || return 0
    pid=$(cat "$dir/registry.pid")
    rm -f "$dir/registry.pid"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

[ $# -ge 2 ] || usage
case "$1" in
start) start "$2" "${3:-}" "${4:-}" ;;
stop) stop "$2" ;;
*) usage ;;
esac
