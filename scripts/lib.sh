# Helpers shared by the benchmark scripts (scripts/bench*.sh, benches/instr.sh), sourced from the
# repository root: `. scripts/lib.sh`. Defines functions only; prints nothing.

# A free TCP port on 127.0.0.1 (the kernel's choice).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A random port in 30000..49999 with room for listenPort-2 .. listenPort+1 (a broker's fast and HA
# ports): none of them accepts a connection now.
pick() {
  local p
  while :; do
    p=$(( ( RANDOM % 20000 ) + 30000 ))
    (echo >/dev/tcp/127.0.0.1/$((p-2))) 2>/dev/null && continue
    (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null && continue
    (echo >/dev/tcp/127.0.0.1/$((p+1))) 2>/dev/null && continue
    echo $p; return
  done
}

# wait_port PORT TRIES PAUSE: waits until 127.0.0.1:PORT accepts, checking at most TRIES times,
# PAUSE seconds apart. Returns 0 either way (the caller's next step shows a failure).
wait_port() {
  local _
  for _ in $(seq 1 "$2"); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep "$3"; done
  return 0
}

# wait_log FILE TEXT TRIES PAUSE: waits until FILE contains TEXT, checking at most TRIES times,
# PAUSE seconds apart. Returns 0 either way.
wait_log() {
  local _
  for _ in $(seq 1 "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep "$4"; done
  return 0
}

# field JSON KEY: the value of KEY in the JSON object JSON (mqbench --json's last line).
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
