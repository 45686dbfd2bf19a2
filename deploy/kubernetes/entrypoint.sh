#!/usr/bin/env bash
# Entrypoint of a BrokerContainer pod in RIP-31's peer-to-peer cross deployment.
#
# Pod N of a StatefulSet of R pods hosts the master of group broker-N (brokerId 0) and, for each
# k in 1..R-1, the slave of group broker-((N-k) mod R) with brokerId k: every group has its master
# and R-1 slaves, each on another pod. The pod's ordinal comes from its name (<set>-<N>).
#
#   entrypoint.sh start     write the configs for this pod and exec mqbrokercontainer
#   entrypoint.sh prestop   drain this pod's master (removeBroker --drain) and stop
#
# Environment (all have defaults except NAMESRV_ADDR):
#   POD_NAME       <statefulset>-<ordinal> (Kubernetes sets HOSTNAME the same way)
#   POD_IP         address registered for clients and replication (default 127.0.0.1)
#   REPLICAS       pods in the set = replicas of each group (2 or 3)
#   NAMESRV_ADDR   host:port;host:port of the NameServers
#   CLUSTER        brokerClusterName (default DefaultCluster)
#   DATA_DIR       the pod's volume: configs, stores and logs go below it (default /data)
#   PORT_BASE      listenPort of the first hosted broker; the k-th uses PORT_BASE+10k (default 10911)
#   ADMIN_PORT     the container's admin port (default 10811)
#   METRICS_PORT   Prometheus endpoint, 0 = off (default 5557)
#   FLUSH          ASYNC_FLUSH or SYNC_FLUSH (default ASYNC_FLUSH)
#   QUOTA          each broker's share of the volume (default 1/REPLICAS)
#   COMMITLOG_FILE_SIZE  mappedFileSizeCommitLog (default 1073741824)
#   BIN_DIR        where mqbrokercontainer and mqadmin are (default: PATH)
#   EXTRA_BROKER_PROPS  lines appended to every broker config (e.g. smaller index files)
set -euo pipefail

pod="${POD_NAME:-${HOSTNAME:-rmqc-0}}"
ordinal="${pod##*-}"
case "$ordinal" in ''|*[!0-9]*) echo "entrypoint: cannot read an ordinal from pod name '$pod'" >&2; exit 2 ;; esac
replicas="${REPLICAS:-2}"
case "$replicas" in 1|2|3|4|5) ;; *) echo "entrypoint: REPLICAS must be 1..5, got '$replicas'" >&2; exit 2 ;; esac
if [ "$ordinal" -ge "$replicas" ]; then
  echo "entrypoint: pod ordinal $ordinal is outside REPLICAS=$replicas" >&2; exit 2
fi
ip="${POD_IP:-127.0.0.1}"
cluster="${CLUSTER:-DefaultCluster}"
data="${DATA_DIR:-/data}"
port_base="${PORT_BASE:-10911}"
admin_port="${ADMIN_PORT:-10811}"
metrics_port="${METRICS_PORT:-5557}"
flush="${FLUSH:-ASYNC_FLUSH}"
file_size="${COMMITLOG_FILE_SIZE:-1073741824}"
quota="${QUOTA:-$(awk -v r="$replicas" 'BEGIN { printf "%.4f", 1 / r }')}"
bin="${BIN_DIR:+$BIN_DIR/}"
conf="$data/conf"

write_configs() {
  : "${NAMESRV_ADDR:?entrypoint: NAMESRV_ADDR must name the NameServers (host:port;host:port)}"
  mkdir -p "$conf" "$data/store" "$data/logs"
  local paths=() k group id role port name
  for k in $(seq 0 $((replicas - 1))); do
    group=$(( (ordinal - k + replicas) % replicas ))
    id=$k
    if [ "$k" -eq 0 ]; then
      if [ "$replicas" -gt 1 ]; then role=SYNC_MASTER; else role=ASYNC_MASTER; fi
    else
      role=SLAVE
    fi
    port=$((port_base + 10 * k))
    name="broker-$group"
    cat > "$conf/$name-$id.conf" <<CONF
# Written by entrypoint.sh for pod $pod (ordinal $ordinal of $replicas).
brokerClusterName=$cluster
brokerName=$name
brokerId=$id
brokerRole=$role
flushDiskType=$flush
listenPort=$port
brokerIP1=$ip
storePathRootDir=$data/store/$name-$id
mappedFileSizeCommitLog=$file_size
totalReplicas=$replicas
inSyncReplicas=$(( replicas > 1 ? 2 : 1 ))
quotaPercentForDiskPartition=$quota
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
${EXTRA_BROKER_PROPS:-}
CONF
    paths+=("$name-$id.conf")
  done
  cat > "$conf/container.conf" <<CONF
# Written by entrypoint.sh for pod $pod.
listenPort=$admin_port
brokerContainerIP=$ip
namesrvAddr=$NAMESRV_ADDR
brokerConfigPaths=$(IFS=:; echo "${paths[*]}")
brokerConfigDirs=.
logRoot=$data/logs
CONF
  if [ "$metrics_port" != 0 ]; then
    printf 'metricsExporterType=PROM\nmetricsPromExporterPort=%s\n' "$metrics_port" >> "$conf/container.conf"
  fi
}

case "${1:-start}" in
  start)
    write_configs
    echo "entrypoint: pod $pod hosts $(ls "$conf" | grep -v container.conf | tr '\n' ' ')"
    exec "${bin}mqbrokercontainer" -c "$conf/container.conf"
    ;;
  configs)
    write_configs
    ls "$conf"
    ;;
  prestop)
    # Drain this pod's master (read-only, wait until consumers caught up, bounded), then let
    # SIGTERM unregister, flush and stop the rest.
    "${bin}mqadmin" removeBroker -c "127.0.0.1:$admin_port" -b "$cluster:broker-$ordinal:0" \
      --drain --drainTimeout "${DRAIN_TIMEOUT_MS:-20000}" || true
    ;;
  *)
    echo "usage: entrypoint.sh start|configs|prestop" >&2
    exit 2
    ;;
esac
