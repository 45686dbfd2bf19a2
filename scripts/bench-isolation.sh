#!/usr/bin/env bash
# Isolation benchmark (issue 13): how much a saturated broker A slows a quiet broker B.
# Prints, side by side, B's single synchronous sender (1 KiB) alone; next to A saturated (64 in
# flight) in the same container; next to A saturated in another container process; and A's own
# rate in both layouts. Everything runs on 127.0.0.1; each run lasts <seconds> (default 10).
# With --many: 32 brokers in one container, each sent a modest rate (mqbench --rate) at once; prints
# the slowest and the fastest broker's p99 side by side.
# Usage: scripts/bench-isolation.sh [--many] [seconds]
# BROKER_EXTRA='key=value' adds broker keys to every broker (e.g. adaptivePriorityEnable=true).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
many=0
if [ "${1:-}" = "--many" ]; then many=1; shift; fi
secs="${1:-10}"
cargo build --release --bins >&2
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

broker_conf() { # name port dir
  cat > "$3/$1.conf" <<CONF
brokerClusterName=IsoCluster
brokerName=$1
listenPort=$2
brokerIP1=127.0.0.1
flushDiskType=ASYNC_FLUSH
storePathRootDir=$3/store/$1
mappedFileSizeCommitLog=268435456
maxHashSlotNum=500000
maxIndexNum=2000000
CONF
  # Extra broker keys for every broker, one per line (e.g. BROKER_EXTRA=adaptivePriorityEnable=true).
  if [ -n "${BROKER_EXTRA:-}" ]; then printf '%s\n' "$BROKER_EXTRA" >> "$3/$1.conf"; fi
}
ns=$(free_port)

if [ $many = 1 ]; then
  n=32; rate=${RATE:-300}
  m="$work/many"; mkdir -p "$m"; paths=()
  for i in $(seq 1 $n); do
    cat > "$m/m$i.conf" <<CONF
brokerClusterName=ManyCluster
brokerName=many-$i
listenPort=$(pick)
brokerIP1=127.0.0.1
flushDiskType=ASYNC_FLUSH
storePathRootDir=$m/store/m$i
mappedFileSizeCommitLog=67108864
maxHashSlotNum=50000
maxIndexNum=200000
brokerWorkerThreads=1
CONF
    paths+=("m$i.conf")
  done
  cat > "$m/container.conf" <<CONF
listenPort=$(pick)
bindAddress=127.0.0.1
embeddedNamesrvEnable=true
embeddedNamesrvPort=$ns
namesrvAddr=127.0.0.1:$ns
brokerConfigPaths=$(IFS=:; echo "${paths[*]}")
brokerConfigDirs=.
logRoot=$m/logs
CONF
  RUST_LOG=warn HOME="$work" $bin/mqbrokercontainer -c "$m/container.conf" > "$m/out" 2>&1 & pids+=($!)
  wait_log "$m/out" "hosts $n broker" 600 0.05
  for i in $(seq 1 $n); do
    $bin/mqbench producer -n 127.0.0.1:$ns -t "Many_$i" -b "many-$i" -w 4 -s 1024 -d 1 --interval 3600 --json > /dev/null 2>&1 &
  done
  wait_bench() { for j in $(jobs -p); do case " ${pids[*]} " in *" $j "*) ;; *) wait "$j" || true ;; esac; done; }
  wait_bench
  for i in $(seq 1 $n); do
    $bin/mqbench producer -n 127.0.0.1:$ns -t "Many_$i" -b "many-$i" -w 4 --rate "$rate" -s 1024 -d "$secs" --interval 3600 --json 2>/dev/null | tail -1 > "$m/r$i.json" &
  done
  wait_bench
  python3 - "$m" "$n" "$rate" "$secs" <<'PY'
import json, sys, os
d, n, rate, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = []
for i in range(1, n + 1):
    try:
        rows.append((i, json.load(open(os.path.join(d, "r%d.json" % i)))))
    except Exception as e:
        print("broker many-%d: no result (%s)" % (i, e))
rows.sort(key=lambda r: r[1]["p99_ms"])
print("| %d brokers, %s msgs/s each, 1 KiB, %s s | broker | sends/s | p50 ms | p99 ms | failures |" % (n, rate, secs))
print("|---|---|---|---|---|---|")
for label, (i, r) in (("fastest p99", rows[0]), ("median p99", rows[len(rows) // 2]), ("slowest p99", rows[-1])):
    print("| %s | many-%d | %.0f | %.3f | %.3f | %d |" % (label, i, r["tps"], r["p50_ms"], r["p99_ms"], r["failures"]))
print()
print("slowest p99 / fastest p99: %.2fx; total %.0f sends/s" % (rows[-1][1]["p99_ms"] / max(rows[0][1]["p99_ms"], 1e-9), sum(r["tps"] for _, r in rows)))
PY
  echo "machine: $(nproc) cores, $(uname -m), $(uname -r)"
  exit 0
fi

# Container 1 hosts iso-a and iso-b and the embedded NameServer; container 2 hosts iso-a2.
c1="$work/c1"; c2="$work/c2"; mkdir -p "$c1" "$c2"
broker_conf iso-a "$(pick)" "$c1"; broker_conf iso-b "$(pick)" "$c1"; broker_conf iso-a2 "$(pick)" "$c2"
cat > "$c1/container.conf" <<CONF
listenPort=$(pick)
bindAddress=127.0.0.1
embeddedNamesrvEnable=true
embeddedNamesrvPort=$ns
namesrvAddr=127.0.0.1:$ns
brokerConfigPaths=iso-a.conf:iso-b.conf
brokerConfigDirs=.
logRoot=$c1/logs
CONF
cat > "$c2/container.conf" <<CONF
listenPort=$(pick)
bindAddress=127.0.0.1
namesrvAddr=127.0.0.1:$ns
brokerConfigPaths=iso-a2.conf
brokerConfigDirs=.
logRoot=$c2/logs
CONF
RUST_LOG=warn HOME="$work" $bin/mqbrokercontainer -c "$c1/container.conf" > "$c1/out" 2>&1 & pids+=($!)
wait_log "$c1/out" "hosts 2 broker" 400 0.05
RUST_LOG=warn HOME="$work" $bin/mqbrokercontainer -c "$c2/container.conf" > "$c2/out" 2>&1 & pids+=($!)
wait_log "$c2/out" "hosts 1 broker" 400 0.05

bench() { # broker topic inflight mode seconds
  $bin/mqbench producer -n 127.0.0.1:$ns -t "$2" -b "$1" -w "$3" --mode "$4" -s 1024 -d "$5" --interval 3600 --json | tail -1
}

# Warm up every broker and create the topics.
for b in iso-a iso-b iso-a2; do bench "$b" "Iso_$b" 16 async 2 >/dev/null; done

b_alone=$(bench iso-b Iso_iso-b 1 sync "$secs")
a_alone=$(bench iso-a Iso_iso-a 64 async "$secs")
a2_alone=$(bench iso-a2 Iso_iso-a2 64 async "$secs")

bench iso-a Iso_iso-a 64 async $((secs + 2)) > "$work/a_same" &
lp=$!; sleep 1
# Halfway through B's run: how many of container 1's threads run demoted (SCHED_BATCH or niced).
( sleep "$(python3 -c "print($secs/2)")"; python3 - "${pids[0]}" > "$work/classes" <<'PY'
import os, sys
pid = sys.argv[1]; total = demoted = 0; names = set()
for t in os.listdir("/proc/%s/task" % pid):
    try:
        st = open("/proc/%s/task/%s/stat" % (pid, t)).read()
    except OSError:
        continue
    name = st[st.index("(") + 1:st.rindex(")")]; f = st[st.rindex(")") + 2:].split()
    total += 1
    if f[16] != "0" or f[38] != "0":
        demoted += 1; names.add(name)
print("%d of %d threads demoted (%s)" % (demoted, total, ", ".join(sorted(names)) or "none"))
PY
) &
cp=$!
b_same=$(bench iso-b Iso_iso-b 1 sync "$secs")
wait $lp; a_same=$(cat "$work/a_same"); wait $cp || true

bench iso-a2 Iso_iso-a2 64 async $((secs + 2)) > "$work/a_other" &
lp=$!; sleep 1
b_other=$(bench iso-b Iso_iso-b 1 sync "$secs")
wait $lp; a_other=$(cat "$work/a_other")

row() { printf '| %s | %.0f | %.3f | %.3f | %.3f | %.0f |\n' "$1" "$(field "$2" tps)" "$(field "$2" p50_ms)" "$(field "$2" p99_ms)" "$(field "$2" p999_ms)" "$(field "$3" tps)"; }
echo "| layout | B sends/s (1 sync sender) | B p50 ms | B p99 ms | B p999 ms | A sends/s (64 in flight) |"
echo "|---|---|---|---|---|---|"
row "B alone; A alone (same container / other process: $(printf %.0f "$(field "$a2_alone" tps)"))" "$b_alone" "$a_alone"
row "B next to saturated A, same container" "$b_same" "$a_same"
row "B next to saturated A, other process" "$b_other" "$a_other"
python3 - "$b_alone" "$b_same" "$b_other" "$a_same" "$a_other" <<'PY'
import json, sys
ba, bs, bo, as_, ao = (json.loads(x) for x in sys.argv[1:])
print()
print("B p99 same container / alone: %.2fx (target <= 2x)" % (bs["p99_ms"] / max(ba["p99_ms"], 1e-9)))
print("B rate same container / other process: %.2fx (target >= 0.8x)" % (bs["tps"] / max(bo["tps"], 1e-9)))
print("A rate same container / other process: %.2fx (target >= 1x)" % (as_["tps"] / max(ao["tps"], 1e-9)))
PY
echo "container 1 during B's same-container run: $(cat "$work/classes" 2>/dev/null || echo 'not sampled')"
echo
echo "machine: $(nproc) cores, $(uname -m), $(uname -r); $secs s per run"
