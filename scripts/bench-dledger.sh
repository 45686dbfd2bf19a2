#!/usr/bin/env bash
# DLedger benchmark (issue 14): one Raft group of three brokers, one per container process, with a
# NameServer, all on 127.0.0.1. Prints the replicated send rate and latency (a send is acknowledged
# once a majority has it), the followers' lag in entries sampled during the load, and the election
# time after a SIGKILL of the leader's container (until clusterList shows a new leader).
# Usage: scripts/bench-dledger.sh [seconds]   (default 10; HB=<ms> sets heartBeatTimeIntervalMs, default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
secs="${1:-10}"
hb="${HB:-2000}"
cargo build --release --bins >&2
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

ns=$(free_port)
printf 'listenPort=%s\nkvConfigPath=%s/kv.json\n' "$ns" "$work" > "$work/namesrv.conf"
RUST_LOG=warn $bin/mqnamesrv -c "$work/namesrv.conf" > "$work/namesrv.out" 2>&1 & pids+=($!)
wait_port "$ns" 200 0.05
dports=($(free_port) $(free_port) $(free_port))
peers="n0-127.0.0.1:${dports[0]};n1-127.0.0.1:${dports[1]};n2-127.0.0.1:${dports[2]}"
cpids=()
for i in 0 1 2; do
  c="$work/c$i"; mkdir -p "$c"
  cat > "$c/dl-a.conf" <<CONF
brokerClusterName=DlBench
brokerName=dl-a
listenPort=$(pick)
brokerIP1=127.0.0.1
flushDiskType=ASYNC_FLUSH
storePathRootDir=$c/store
mappedFileSizeCommitLog=268435456
maxHashSlotNum=500000
maxIndexNum=2000000
enableDLegerCommitLog=true
dLegerGroup=dl-a
dLegerPeers=$peers
dLegerSelfId=n$i
heartBeatTimeIntervalMs=$hb
CONF
  cat > "$c/container.conf" <<CONF
listenPort=$(pick)
bindAddress=127.0.0.1
namesrvAddr=127.0.0.1:$ns
brokerConfigPaths=dl-a.conf
brokerConfigDirs=.
logRoot=$c/logs
CONF
  RUST_LOG=warn HOME="$work" $bin/mqbrokercontainer -c "$c/container.conf" > "$c/out" 2>&1 & pids+=($!); cpids+=($!)
done

roles() { $bin/mqadmin clusterList -n 127.0.0.1:$ns 2>/dev/null | grep -o 'dLeger=n[0-9]:[A-Z]*,term=[0-9]*,leader=[^,]*,lagEntries=[0-9?]*' || true; }
leader_of() { roles | sed -n 's/^dLeger=n\([0-9]\):LEADER.*/\1/p' | head -1; }
t0=$(date +%s%N)
for _ in $(seq 1 600); do [ "$(roles | grep -c ':FOLLOWER')" = 2 ] && [ -n "$(leader_of)" ] && break; sleep 0.1; done
first=$(( ($(date +%s%N) - t0) / 1000000 ))
leader=$(leader_of)
[ -n "$leader" ] || { echo "no leader elected; see $work" >&2; exit 1; }

bench() { # inflight mode seconds
  $bin/mqbench producer -n 127.0.0.1:$ns -t DlBench -b dl-a -w "$1" --mode "$2" -s 1024 -d "$3" --interval 3600 --json | tail -1
}
bench 16 async 2 > /dev/null

one=$(bench 1 sync "$secs")
bench 64 async "$secs" > "$work/load" &
lp=$!
maxlag=0
while kill -0 $lp 2>/dev/null; do
  for l in $(roles | sed -n 's/.*:FOLLOWER.*lagEntries=\([0-9]*\).*/\1/p'); do [ "$l" -gt "$maxlag" ] && maxlag=$l; done
  sleep 0.5
done
wait $lp; many=$(cat "$work/load")

# Election: SIGKILL the leader's container; time until clusterList shows another member leading.
kill -9 "${cpids[$leader]}"
t0=$(date +%s%N)
new=
for _ in $(seq 1 600); do new=$(leader_of); [ -n "$new" ] && [ "$new" != "$leader" ] && break; new=; sleep 0.05; done
took=$(( ($(date +%s%N) - t0) / 1000000 ))

echo "| DLedger group of 3 (one per container), 1 KiB, ASYNC_FLUSH, ${secs} s | sends/s | p50 ms | p99 ms | failures |"
echo "|---|---|---|---|---|"
echo "| 1 synchronous sender | $(printf '%.0f' "$(field "$one" tps)") | $(field "$one" p50_ms) | $(field "$one" p99_ms) | $(field "$one" failures) |"
echo "| 64 in flight | $(printf '%.0f' "$(field "$many" tps)") | $(field "$many" p50_ms) | $(field "$many" p99_ms) | $(field "$many" failures) |"
echo
echo "followers' largest lag sampled during the 64-in-flight run: $maxlag entries"
echo "first election: leader n$leader within ${first} ms of the start"
if [ -n "$new" ]; then
  echo "after SIGKILL of n$leader's container: n$new leads after ${took} ms (heartBeatTimeIntervalMs=$hb, maxHeartBeatLeak=3)"
else
  echo "after SIGKILL of n$leader's container: no new leader within ${took} ms"
fi
echo "machine: $(nproc) cores, $(uname -m), $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
