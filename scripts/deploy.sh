#!/usr/bin/env bash
# Starts or stops a RIP-31 cross deployment on loopback: mqnamesrv on 127.0.0.1:9876 and the
# containers of container-conf/2container-2m-2s (2c: 2 masters + 2 slaves) or
# container-conf/3container-3m-6s (3c: 3 masters + 6 slaves) or container-conf/3container-dledger
# (3d: three DLedger groups of three members, one member of each per container), in the background.
# Usage: scripts/deploy.sh <2c|3c|3d> start|stop|status
# Pids and stdout/stderr go to $RMQC_RUN_DIR (default /tmp/rmqc-deploy-<2c|3c|3d>), printed at start.
# Binaries: $RMQC_BIN (default target/release, built with cargo if missing). Stores live under
# ~/rmqc-store/<deployment>/ as the broker configs say.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode="${1:-}"; action="${2:-}"
case "$mode" in
  2c) confdir=container-conf/2container-2m-2s; n=2 ;;
  3c) confdir=container-conf/3container-3m-6s; n=3 ;;
  3d) confdir=container-conf/3container-dledger; n=3 ;;
  *) echo "usage: $0 <2c|3c|3d> start|stop|status" >&2; exit 2 ;;
esac
run="${RMQC_RUN_DIR:-/tmp/rmqc-deploy-$mode}"
bin="${RMQC_BIN:-$root/target/release}"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_one() {
  local pidfile=$1 name; name=$(basename "$pidfile" .pid)
  if alive "$pidfile"; then
    local pid; pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "$name did not stop within 20 s; killing" >&2; kill -KILL "$pid"; fi
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

case "$action" in
  start)
    if [ ! -x "$bin/mqbrokercontainer" ] || [ ! -x "$bin/mqnamesrv" ]; then
      cargo build --release --bin mqnamesrv --bin mqbrokercontainer >&2
    fi
    mkdir -p "$run"
    if alive "$run/namesrv.pid"; then echo "already running (see $run)" >&2; exit 1; fi
    printf 'listenPort=9876\nkvConfigPath=%s/kvConfig.json\n' "$run" > "$run/namesrv.conf"
    nohup "$bin/mqnamesrv" -c "$run/namesrv.conf" >"$run/namesrv.out" 2>"$run/namesrv.err" </dev/null &
    echo $! > "$run/namesrv.pid"
    for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/9876) 2>/dev/null && break; sleep 0.1; done
    for i in $(seq 1 "$n"); do
      conf="$root/$confdir/broker-container$i.conf"
      nohup "$bin/mqbrokercontainer" -c "$conf" >"$run/container$i.out" 2>"$run/container$i.err" </dev/null &
      echo $! > "$run/container$i.pid"
    done
    sleep 1
    for f in "$run"/*.pid; do
      alive "$f" || { echo "$(basename "$f" .pid) exited at start; see $run" >&2; exit 1; }
    done
    echo "started $mode deployment: namesrv 127.0.0.1:9876 + $n containers ($confdir)"
    echo "pids and logs: $run"
    ;;
  stop)
    for i in $(seq "$n" -1 1); do stop_one "$run/container$i.pid"; done
    stop_one "$run/namesrv.pid"
    ;;
  status)
    for f in "$run"/*.pid; do
      [ -e "$f" ] || continue
      if alive "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"; else echo "$(basename "$f" .pid): not running"; fi
    done
    ;;
  *) echo "usage: $0 <2c|3c|3d> start|stop|status" >&2; exit 2 ;;
esac
