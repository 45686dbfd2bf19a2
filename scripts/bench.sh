#!/usr/bin/env bash
# Benchmarks a container on loopback: an ASYNC_FLUSH and a SYNC_FLUSH broker, 1 KiB and 128 B
# messages, 1 / 16 / 64 requests in flight, then a consume run. Prints a markdown table.
# Usage: scripts/bench.sh [seconds-per-run]   (default 5)
#        scripts/bench.sh isolation [seconds]   (B next to a saturated A: scripts/bench-isolation.sh)
#        scripts/bench.sh many [seconds]        (32 brokers in one container: scripts/bench-isolation.sh --many)
#        scripts/bench.sh dledger [seconds]     (a DLedger group of three containers: scripts/bench-dledger.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  isolation) shift; exec scripts/bench-isolation.sh "$@" ;;
  many) shift; exec scripts/bench-isolation.sh --many "$@" ;;
  dledger) shift; exec scripts/bench-dledger.sh "$@" ;;
esac
. scripts/lib.sh
secs="${1:-5}"
cargo build --release --bins >&2
bin=target/release
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT

ns=$(free_port); cport=$(pick); pa=$(pick); ps_=$(pick)
for b in async sync; do
  port=$pa; flush=ASYNC_FLUSH
  if [ $b = sync ]; then port=$ps_; flush=SYNC_FLUSH; fi
  cat > "$work/bench-$b.conf" <<CONF
brokerClusterName=BenchCluster
brokerName=bench-$b
brokerId=0
listenPort=$port
brokerIP1=127.0.0.1
flushDiskType=$flush
storePathRootDir=$work/store/$b
mappedFileSizeCommitLog=268435456
maxHashSlotNum=500000
maxIndexNum=2000000
CONF
done
cat > "$work/container.conf" <<CONF
listenPort=$cport
bindAddress=127.0.0.1
embeddedNamesrvEnable=true
embeddedNamesrvPort=$ns
namesrvAddr=127.0.0.1:$ns
brokerConfigPaths=bench-async.conf:bench-sync.conf
logRoot=$work/logs
CONF
t0=$(date +%s.%N)
RUST_LOG=warn HOME="$work" $bin/mqbrokercontainer -c "$work/container.conf" > "$work/container.out" 2>&1 &
pid=$!
wait_port "$ps_" 200 0.05
t1=$(date +%s.%N)
echo "container with 2 brokers listening after $(python3 -c "print(round($t1-$t0,3))") s" >&2

row() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("| %s | %s | %s | %s | %.0f | %.3f | %.3f | %.3f | %.3f | %d |" % (sys.argv[2],sys.argv[3],sys.argv[4],sys.argv[5],d["tps"],d["p50_ms"],d["p99_ms"],d["p999_ms"],d["max_ms"],d["failures"]))' "$@"; }
echo "| flush | size | in flight | mode | msgs/s | p50 ms | p99 ms | p999 ms | max ms | failures |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for flush in async sync; do
  for size in 1024 128; do
    for w in 1 16 64; do
      out=$($bin/mqbench producer -n 127.0.0.1:$ns -t "Bench_${flush}_$size" -b "bench-$flush" -w $w -s $size -d "$secs" --interval 3600 --json | tail -1)
      row "$out" "$flush" "$size" "$w" async
    done
  done
done
echo
echo "| consume (from start) | msgs/s | failures |"
echo "|---|---|---|"
out=$($bin/mqbench consumer -n 127.0.0.1:$ns -t Bench_async_1024 -g bench-consumer --from-start -d "$secs" --interval 3600 --json | tail -1)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("| Bench_async_1024 | %.0f | %d |" % (d["tps"], d["failures"]))' "$out"
echo
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
echo "container RSS after the runs: $((rss/1024)) MiB"
kill $pid; wait $pid 2>/dev/null || true

# An idle container hosting 8 brokers: start time, resident memory, and addBroker latency.
many="$work/many"; mkdir -p "$many"
paths=()
for i in $(seq 1 9); do
  p=$(pick)
  cat > "$many/b$i.conf" <<CONF
brokerClusterName=IdleCluster
brokerName=idle-$i
listenPort=$p
brokerIP1=127.0.0.1
storePathRootDir=$many/store/b$i
mappedFileSizeCommitLog=67108864
maxHashSlotNum=100000
maxIndexNum=400000
CONF
  [ $i -le 8 ] && paths+=("b$i.conf")
  last_port=$p
done
ns2=$(free_port); c2=$(pick)
cat > "$many/container.conf" <<CONF
listenPort=$c2
bindAddress=127.0.0.1
embeddedNamesrvEnable=true
embeddedNamesrvPort=$ns2
namesrvAddr=127.0.0.1:$ns2
brokerConfigPaths=$(IFS=:; echo "${paths[*]}")
brokerConfigDirs=.
logRoot=$many/logs
CONF
t0=$(date +%s.%N)
RUST_LOG=warn HOME="$work" $bin/mqbrokercontainer -c "$many/container.conf" > "$many/out" 2>&1 &
pid=$!
wait_log "$many/out" "hosts 8 broker" 400 0.01
t1=$(date +%s.%N)
sleep 2
rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
a0=$(date +%s.%N)
$bin/mqadmin addBroker -c 127.0.0.1:$c2 -b "$many/b9.conf" >/dev/null
a1=$(date +%s.%N)
echo "| idle container, 8 brokers | value |"
echo "|---|---|"
echo "| start (process start to all 8 brokers registered) | $(python3 -c "print(round(($t1-$t0)*1000))") ms |"
echo "| resident memory after 2 s idle | $((rss/1024)) MiB |"
echo "| addBroker (9th broker, mqadmin round trip incl. process start) | $(python3 -c "print(round(($a1-$a0)*1000))") ms |"
echo
echo "machine: $(nproc) cores, $(uname -m), $(uname -r)"
