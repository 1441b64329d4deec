#!/usr/bin/env bash
# keel vs redis-server, side by side, in one run of this script.
#
# Starts a keel node (durable writes, 2 shards) and a redis-server (appendonly yes,
# appendfsync always) on 127.0.0.1, loads the same records into each (one after the
# other), then runs each workload RUNS times against each, alternating keel and redis run
# by run (INTERLEAVE=0: every keel run, then every redis run), so that a drift in the
# host's speed over the minutes of the comparison falls on both alike. Only one server is
# under load at a time; the other is idle. Prints one table of medians with keel/redis
# ratios. Everything it starts it stops by PID (also on Ctrl-C or error). Each step is
# bounded in time.
#
#   bench/compare.sh                        # 1M records, workloads a and c, 3 runs of 30 s
#   RECORDS=100000 DURATION=10 RUNS=1 bench/compare.sh     # a quick look
#
# Before each run the other server must be idle (redis: no AOF rewrite in progress; both:
# under 2% of a CPU for a second), at most 120 s of waiting.
#
# Settings (environment): RECORDS, WORKLOADS ("a c"), RUNS, DURATION, WARMUP, CONNECTIONS,
# DEPTH, THREADS (generator threads driving the connections; default one per connection),
# SHARDS, KEEL_CACHE_MIB (page cache per shard), OUT (results directory), KEEL_PORT,
# REDIS_PORT, EXTRA (more keel-bench flags), INTERLEAVE (1, default: alternate the runs).
set -euo pipefail

RECORDS=${RECORDS:-1000000}
WORKLOADS=${WORKLOADS:-"a c"}
RUNS=${RUNS:-3}
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-16}
DEPTH=${DEPTH:-4}
THREADS=${THREADS:-$CONNECTIONS}
SHARDS=${SHARDS:-2}
# Page cache per keel shard, MiB: redis holds every record in memory, so by default keel
# gets a cache that holds the loaded records too. A 1 KiB record takes ~1.6 KiB of leaf
# pages, and while a checkpoint is written each updated leaf has a second copy: 2.4 KiB
# per record (at 1.6 KiB, 1-4% of workload A's operations on 1M records read a page from disk).
KEEL_CACHE_MIB=${KEEL_CACHE_MIB:-$(( RECORDS * 24 / 10 / 1024 / SHARDS + 128 ))}
KEEL_PORT=${KEEL_PORT:-17600}
REDIS_PORT=${REDIS_PORT:-17650}
EXTRA=${EXTRA:-}
INTERLEAVE=${INTERLEAVE:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench-results/$(date +%Y%m%d-%H%M%S)}
BIN=$ROOT/target/release

command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "redis-cli is not installed (redis-tools)" >&2; exit 2; }
mkdir -p "$OUT"
echo "results in $OUT"
(cd "$ROOT" && cargo build --release -p keel-tools -p keel-bench)

KEEL_PID=""
REDIS_PID=""
stop_pid() {  # pid
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        wait "$pid" 2>/dev/null || true
    fi
}
stop_servers() {
    stop_pid "$KEEL_PID"
    KEEL_PID=""
    stop_pid "$REDIS_PID"
    REDIS_PID=""
}
trap stop_servers EXIT INT TERM

wait_for_port() {  # pid port
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        kill -0 "$1" 2>/dev/null || { echo "server exited" >&2; return 1; }
        sleep 0.1
    done
    echo "port $2 not open after 30 s" >&2
    return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Waits (at most 120 s) until the server `name` is idle: for redis, no AOF rewrite or
# background save running (redis rewrites its AOF in a forked child each time the file
# has doubled; the load triggers several, and the last one often runs ~20 s past the end
# of the load, a CPU and the disk) and then, for either server, under 2% of a CPU used
# over one second (keel finishing a checkpoint). A run starts only once the other server
# is quiet, so that one server's background work does not fall on the other's runs.
wait_quiet() {  # name
    local pid tries=0
    if [ "$1" = redis ]; then pid=$REDIS_PID; else pid=$KEEL_PID; fi
    while [ "$tries" -lt 120 ]; do
        tries=$((tries + 1))
        if [ "$1" = redis ]; then
            local info
            info=$(redis-cli -p "$REDIS_PORT" INFO persistence 2>/dev/null | tr -d '\r')
            if ! grep -q '^aof_rewrite_in_progress:0' <<<"$info" \
                || ! grep -q '^aof_rewrite_scheduled:0' <<<"$info" \
                || ! grep -q '^rdb_bgsave_in_progress:0' <<<"$info"; then
                sleep 1
                continue
            fi
        fi
        local before after
        before=$(cpu_ticks "$pid")
        sleep 1
        after=$(cpu_ticks "$pid")
        if [ $((after - before)) -le 2 ]; then
            [ "$tries" -gt 1 ] && echo "($1 was busy; waited ${tries} s before the next run)"
            return 0
        fi
    done
    echo "warning: $1 still busy after 120 s; running anyway" >&2
}

# The node's port opens when every shard serves (it binds only once every engine is
# open), but its "ready" line is the plain signal: wait for it.
wait_for_ready() {  # pid log
    for _ in $(seq 1 1200); do
        if grep -q "keel node ready" "$2" 2>/dev/null; then return 0; fi
        kill -0 "$1" 2>/dev/null || { echo "server exited" >&2; return 1; }
        sleep 0.1
    done
    echo "keel not ready after 120 s" >&2
    return 1
}

cpus_of() { awk '/Cpus_allowed_list/ {print $2}' "/proc/$1/status"; }

bench() {  # target placement args...
    local target=$1 placement=$2; shift 2
    local run_limit=$((WARMUP + DURATION + 60))
    # shellcheck disable=SC2086
    timeout $((run_limit + 1900)) "$BIN/keel-bench" --target "$target" --records "$RECORDS" \
        --connections "$CONNECTIONS" --threads "$THREADS" --depth "$DEPTH" --warmup "$WARMUP" \
        --duration "$DURATION" --time-limit "$run_limit" --load-time-limit 1800 \
        --no-progress --placement "$placement" $EXTRA "$@"
}

KEEL_TARGET="keel://127.0.0.1:$KEEL_PORT"
REDIS_TARGET="redis://127.0.0.1:$REDIS_PORT"
placement_of() {  # name
    if [ "$1" = keel ]; then
        echo "keel server pid $KEEL_PID on CPUs $(cpus_of "$KEEL_PID") (each shard pinned to one CPU by keel)"
    else
        echo "redis server pid $REDIS_PID on CPUs $(cpus_of "$REDIS_PID")"
    fi
}
target_of() { if [ "$1" = keel ]; then echo "$KEEL_TARGET"; else echo "$REDIS_TARGET"; fi; }

load() {  # name
    echo "== $1: load $RECORDS records"
    bench "$(target_of "$1")" "$(placement_of "$1")" --phase load --workload a \
        | tee "$OUT/$1-load.txt"
}

run_one() {  # name workload run
    if [ "$1" = keel ]; then wait_quiet redis; else wait_quiet keel; fi
    echo "== $1: workload $2, run $3 of $RUNS"
    bench "$(target_of "$1")" "$(placement_of "$1")" --phase run --workload "$2" \
        --json "$OUT/$1-$2-$3.json" | tee "$OUT/$1-$2-$3.txt"
}

# keel: durable writes (every acknowledged write is fdatasynced in its WAL batch).
rm -rf "$OUT/keel-data"
"$BIN/keel" start --data-dir "$OUT/keel-data" --shards "$SHARDS" \
    --cache-mib "$KEEL_CACHE_MIB" --listen "127.0.0.1:$KEEL_PORT" > "$OUT/keel-node.log" 2>&1 &
KEEL_PID=$!
wait_for_ready "$KEEL_PID" "$OUT/keel-node.log"
load keel

# redis: every write fsynced before it is acknowledged (appendfsync always).
rm -rf "$OUT/redis-data" && mkdir -p "$OUT/redis-data"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$OUT/redis-data" \
    --appendonly yes --appendfsync always --save "" --daemonize no \
    > "$OUT/redis-server.log" 2>&1 &
REDIS_PID=$!
wait_for_port "$REDIS_PID" "$REDIS_PORT"
load redis

for w in $WORKLOADS; do
    if [ "$INTERLEAVE" = 1 ]; then
        for r in $(seq 1 "$RUNS"); do
            run_one keel "$w" "$r"
            run_one redis "$w" "$r"
        done
    else
        for name in keel redis; do
            for r in $(seq 1 "$RUNS"); do run_one "$name" "$w" "$r"; done
        done
    fi
done
stop_servers

CPU=$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}')
echo "== comparison ($RUNS runs each, median; $(nproc) CPUs: $CPU)"
"$BIN/keel-bench" compare-table "$OUT"/keel-*.json "$OUT"/redis-*.json | tee "$OUT/table.txt"
