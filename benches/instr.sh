#!/usr/bin/env bash
# Instructions per request of the send path, for the container and for mqbench, with callgrind
# (deterministic, unlike wall-clock rates on a shared 2-core machine).
# Usage: benches/instr.sh [count]   (default 20000; needs a release build and valgrind)
# Container: started under callgrind, warmed with 2000 sends, counters zeroed, then `count` sends of
# `mqbench producer -w 64 -s 1024`; instructions of that window / count.
# mqbench: run (natively-served container) under callgrind for 2000 and for 2000+count sends; the
# difference / count.
# The store lives under $TMPDIR (TMPDIR=/dev/shm when the disk is fuller than the brokers' 90 % write
# limit). KEEP=dir: also keeps the callgrind outputs there and writes the per-function profiles
# (callgrind_annotate, self cost) to dir/container.txt and dir/mqbench.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
n="${1:-20000}"
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
ns=$(free_port); cport=$(pick); port=$(pick)
cat > "$work/b.conf" <<CONF
brokerClusterName=BenchCluster
brokerName=bench-async
brokerId=0
listenPort=$port
brokerIP1=127.0.0.1
flushDiskType=ASYNC_FLUSH
storePathRootDir=$work/store
mappedFileSizeCommitLog=268435456
maxHashSlotNum=500000
maxIndexNum=2000000
waitTimeMillsInSendQueue=60000
CONF
cat > "$work/c.conf" <<CONF
listenPort=$cport
bindAddress=127.0.0.1
embeddedNamesrvEnable=true
embeddedNamesrvPort=$ns
namesrvAddr=127.0.0.1:$ns
brokerConfigPaths=b.conf
logRoot=$work/logs
CONF
start() { # $1: wrapper ("" or valgrind ...)
  RUST_LOG=warn HOME="$work" $1 $bin/mqbrokercontainer -c "$work/c.conf" > "$work/container.out" 2>&1 &
  pid=$!
  wait_port "$port" 600 0.1
  # Under callgrind on a loaded machine the broker may register well after its port opens: wait
  # until a send goes through (at most 120 tries, 1 s apart).
  for _ in $(seq 120); do
    $bin/mqbench producer -n 127.0.0.1:$ns -t Instr -b bench-async -w 1 -s 16 -q 1 --interval 3600 >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "the broker did not take a send within 120 s" >&2
  return 1
}
bench() { $bin/mqbench producer -n 127.0.0.1:$ns -t Instr -b bench-async -w 64 -s 1024 -q "$1" --interval 3600 --json | tail -1; }
total() { grep -h '^totals:' "$@" | awk '{s+=$2} END {printf "%.0f\n", s}'; }
# Container side.
start "valgrind --tool=callgrind --callgrind-out-file=$work/c.%p.out"
bench 2000 >/dev/null
callgrind_control -z $pid >/dev/null
bench "$n" > "$work/run.json"
callgrind_control -d $pid >/dev/null
sleep 1
ci=$(total $work/c.*.out.*)
kill $pid; wait $pid 2>/dev/null || true; pid=
echo "container: $ci instructions for $n sends = $((ci / n)) per send  ($(python3 -c "import json;d=json.load(open('$work/run.json'));print('failures',d['failures'])"))"
# mqbench side.
rm -rf "$work/store"; start ""
valgrind --tool=callgrind --callgrind-out-file=$work/m1.out $bin/mqbench producer -n 127.0.0.1:$ns -t Instr -b bench-async -w 64 -s 1024 -q 2000 --interval 3600 --json >/dev/null 2>&1
valgrind --tool=callgrind --callgrind-out-file=$work/m2.out $bin/mqbench producer -n 127.0.0.1:$ns -t Instr -b bench-async -w 64 -s 1024 -q $((n + 2000)) --interval 3600 --json >/dev/null 2>&1
m1=$(total $work/m1.out); m2=$(total $work/m2.out)
echo "mqbench: $((m2 - m1)) instructions for $n sends = $(((m2 - m1) / n)) per send"; echo
if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP"; cp $work/c.*.out.* $work/m2.out "$KEEP"/
  for f in $work/c.*.out.*; do callgrind_annotate --threshold=98 --auto=no "$f"; done > "$KEEP/container.txt" 2>&1 || true
  callgrind_annotate --threshold=98 --auto=no "$work/m2.out" > "$KEEP/mqbench.txt" 2>&1 || true
fi
