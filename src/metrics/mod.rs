//! Prometheus metrics of a container and its brokers (Apache 5's RIP-46 names and labels where they
//! exist; spec: security-and-metrics.md §5), served over HTTP on `metricsPromExporterPort`.
//!
//! Nothing is registered ahead: each scrape asks every hosted broker for a [`BrokerSample`] and
//! encodes it, so a removed broker's series are gone from the next scrape and nothing accumulates
//! over add/remove cycles. Every broker series carries `cluster`, `node_id` (the broker name),
//! `node_type="broker"` and `broker_id`, so two brokers in one process never clash.

pub mod http;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// (request code label, response code label, sum ms, count, per-bucket counts by upper bound).
pub type RpcLatencySample = (String, String, f64, u64, Vec<(f64, u64)>);

/// Everything one broker reports at a scrape.
#[derive(Debug, Clone, Default)]
pub struct BrokerSample {
    /// `brokerClusterName`.
    pub cluster: String,
    /// `brokerName`.
    pub name: String,
    /// `brokerId`.
    pub id: i64,
    /// `brokerRole` as written in configs.
    pub role: String,
    /// `brokerPermission`.
    pub permission: i64,
    /// Topics known.
    pub topics: i64,
    /// Subscription groups known.
    pub groups: i64,
    /// Bytes of the broker's commitlog, consume queue and index files.
    pub storage_bytes: u64,
    /// Commitlog bytes written but not flushed.
    pub flush_behind_bytes: i64,
    /// Commitlog bytes not yet dispatched to consume queues and index.
    pub dispatch_behind_bytes: i64,
    /// This broker's disk quota (partition × share), bytes (0 if unknown).
    pub quota_bytes: u64,
    /// Logical usage / quota (−1 if unknown).
    pub quota_ratio: f64,
    /// Physical usage ratio of the commitlog partition (−1 if unknown).
    pub disk_ratio: f64,
    /// Replication lag in bytes (master: slowest slave; slave: behind its master; −1 unknown).
    pub replication_lag_bytes: Option<i64>,
    /// (topic, messages, bytes) stored.
    pub messages_in: Vec<(String, u64, u64)>,
    /// (topic, group, messages, bytes) delivered.
    pub messages_out: Vec<(String, String, u64, u64)>,
    /// (group, topic, messages behind the queue ends).
    pub consumer_lag: Vec<(String, String, i64)>,
    /// (group, topic, messages pulled but not committed).
    pub consumer_inflight: Vec<(String, String, i64)>,
    /// (group, topic, messages not pulled yet).
    pub consumer_ready: Vec<(String, String, i64)>,
    /// (language, version, connections) of producers.
    pub producer_connections: Vec<(String, String, i64)>,
    /// (group, language, version, consume mode, connections) of consumers.
    pub consumer_connections: Vec<(String, String, String, String, i64)>,
    /// DLedger role (`leader`, `follower`, `candidate`) and term, for brokers in a Raft group.
    pub dledger: Option<(String, i64)>,
    /// (queue, requests queued or running, requests answered busy so far).
    pub queues: Vec<(String, u64, u64)>,
    /// (request code label, response code label, sum ms, count, per-bucket counts by upper bound).
    pub rpc_latency: Vec<RpcLatencySample>,
}

/// A histogram taken from the broker at scrape time.
#[derive(Debug)]
struct ConstHistogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }
    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

/// What the container itself reports.
#[derive(Debug, Clone, Default)]
pub struct ContainerSample {
    /// Brokers hosted now.
    pub brokers: i64,
    /// Brokers added at runtime since start.
    pub added: u64,
    /// Brokers removed at runtime since start.
    pub removed: u64,
    /// The hosted brokers.
    pub samples: Vec<BrokerSample>,
}

/// Content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders a scrape in the OpenMetrics text format.
pub fn encode(sample: ContainerSample) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(sample)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "encoding metrics failed");
    }
    out
}

#[derive(Debug)]
struct Scrape(ContainerSample);

type Labels = Vec<(&'static str, String)>;

fn base(b: &BrokerSample) -> Labels {
    vec![
        ("cluster", b.cluster.clone()),
        ("node_id", b.name.clone()),
        ("node_type", "broker".to_string()),
        ("broker_id", b.id.to_string()),
    ]
}

fn is_system(topic: &str) -> String {
    let sys = topic.starts_with("rmq_sys_")
        || topic.starts_with("RMQ_SYS_")
        || topic.starts_with("%RETRY%")
        || topic.starts_with("%DLQ%")
        || topic == "SCHEDULE_TOPIC_XXXX"
        || topic == "TBW102"
        || topic == "OFFSET_MOVED_EVENT"
        || topic == "SELF_TEST_TOPIC"
        || topic == "BenchmarkTest";
    sys.to_string()
}

/// Apache's `isSystemGroup`: the broker's own groups (`CID_RMQ_SYS_`, `CID_SYS_RMQ_`, ...).
fn is_system_group(group: &str) -> String {
    let sys = group.starts_with("CID_RMQ_SYS_")
        || group.starts_with("CID_SYS_RMQ_")
        || matches!(
            group,
            "TOOLS_CONSUMER"
                | "FILTERSRV_CONSUMER"
                | "__MONITOR_CONSUMER"
                | "CID_ONS-HTTP-PROXY"
                | "CID_ONSAPI_PERMISSION"
                | "CID_ONSAPI_OWNER"
                | "CID_ONSAPI_PULL"
                | "CID_RMQ_SYS_TRANS"
        );
    sys.to_string()
}

/// One metric family: a name, help, unit, and its series.
struct Family<M> {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    series: Vec<(Labels, M)>,
}

impl<M: EncodeMetric> Family<M> {
    fn new(name: &'static str, help: &'static str, unit: Option<Unit>) -> Self {
        Family { name, help, unit, series: Vec::new() }
    }
    fn push(&mut self, labels: Labels, m: M) {
        self.series.push((labels, m));
    }
    fn encode(self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(first) = self.series.first() else { return Ok(()) };
        let mut family = encoder.encode_descriptor(self.name, self.help, self.unit.as_ref(), first.1.metric_type())?;
        for (labels, m) in &self.series {
            m.encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn gauge(v: i64) -> ConstGauge<i64> {
    ConstGauge::new(v)
}

fn gauge_f(v: f64) -> ConstGauge<f64> {
    ConstGauge::new(v)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let c = &self.0;
        let e = &mut encoder;
        let mut hosted = Family::new("rocketmq_container_brokers", "Brokers hosted by this container", None);
        hosted.push(vec![], gauge(c.brokers));
        hosted.encode(e)?;
        let mut events = Family::new("rocketmq_container_broker_events", "Brokers added and removed at runtime", None);
        events.push(vec![("event", "add".into())], counter(c.added));
        events.push(vec![("event", "remove".into())], counter(c.removed));
        events.encode(e)?;

        let mut in_msgs = Family::new("rocketmq_messages_in", "Messages stored", None);
        let mut in_bytes = Family::new("rocketmq_throughput_in", "Bytes stored", None);
        let mut out_msgs = Family::new("rocketmq_messages_out", "Messages delivered to consumers", None);
        let mut out_bytes = Family::new("rocketmq_throughput_out", "Bytes delivered to consumers", None);
        let mut lag = Family::new("rocketmq_consumer_lag_messages", "Messages behind the queue ends", None);
        let mut inflight =
            Family::new("rocketmq_consumer_inflight_messages", "Messages pulled and not yet committed", None);
        let mut ready = Family::new("rocketmq_consumer_ready_messages", "Messages not yet pulled", None);
        let mut producers = Family::new("rocketmq_producer_connections", "Producer connections", None);
        let mut consumers = Family::new("rocketmq_consumer_connections", "Consumer connections", None);
        let mut dledger_role =
            Family::new("rocketmq_container_dledger_role", "The broker's DLedger role (value 1)", None);
        let mut dledger_term = Family::new("rocketmq_container_dledger_term", "The broker's DLedger term", None);
        let mut perm = Family::new("rocketmq_broker_permission", "Broker permission (6 = read and write)", None);
        let mut topics = Family::new("rocketmq_topic_number", "Topics", None);
        let mut groups = Family::new("rocketmq_consumer_group_number", "Subscription groups", None);
        let mut size =
            Family::new("rocketmq_storage_size", "Bytes of commitlog, consume queues and index", Some(Unit::Bytes));
        let mut flush = Family::new("rocketmq_storage_flush_behind_bytes", "Commitlog bytes not flushed", None);
        let mut dispatch =
            Family::new("rocketmq_storage_dispatch_behind_bytes", "Commitlog bytes not dispatched", None);
        let mut watermark = Family::new("rocketmq_processor_watermark", "Requests queued or running", None);
        let mut busy = Family::new("rocketmq_processor_busy_refusals", "Requests answered SYSTEM_BUSY", None);
        let mut quota = Family::new("rocketmq_container_disk_quota", "The broker's disk quota", Some(Unit::Bytes));
        let mut quota_ratio =
            Family::new("rocketmq_container_disk_quota_used_ratio", "Logical usage over the broker's quota", None);
        let mut disk_ratio =
            Family::new("rocketmq_container_disk_used_ratio", "Physical usage of the commitlog partition", None);
        let mut repl = Family::new("rocketmq_container_replication_lag", "Replication lag", Some(Unit::Bytes));
        let mut role = Family::new("rocketmq_container_broker_role", "The broker's role (value 1)", None);
        let mut rpc = Family::new(
            "rocketmq_rpc_latency",
            "Request processing time by request and response code",
            Some(Unit::Other("milliseconds".into())),
        );
        for b in &c.samples {
            let l = base(b);
            let with = |extra: &[(&'static str, String)]| {
                let mut v = l.clone();
                v.extend(extra.iter().cloned());
                v
            };
            for (t, m, by) in &b.messages_in {
                let labels =
                    with(&[("topic", t.clone()), ("message_type", "normal".into()), ("is_system", is_system(t))]);
                in_msgs.push(labels.clone(), counter(*m));
                in_bytes.push(labels, counter(*by));
            }
            for (t, g, m, by) in &b.messages_out {
                let labels = with(&[("topic", t.clone()), ("consumer_group", g.clone()), ("is_system", is_system(t))]);
                out_msgs.push(labels.clone(), counter(*m));
                out_bytes.push(labels, counter(*by));
            }
            for (g, t, n) in &b.consumer_lag {
                let labels = with(&[
                    ("consumer_group", g.clone()),
                    ("topic", t.clone()),
                    ("is_retry", t.starts_with("%RETRY%").to_string()),
                    ("is_system", is_system(t)),
                ]);
                lag.push(labels, gauge(*n));
            }
            let consumer_labels = |g: &String, t: &String| {
                with(&[
                    ("consumer_group", g.clone()),
                    ("topic", t.clone()),
                    ("is_retry", t.starts_with("%RETRY%").to_string()),
                    ("is_system", is_system(t)),
                ])
            };
            for (g, t, n) in &b.consumer_inflight {
                inflight.push(consumer_labels(g, t), gauge(*n));
            }
            for (g, t, n) in &b.consumer_ready {
                ready.push(consumer_labels(g, t), gauge(*n));
            }
            for (lang, version, n) in &b.producer_connections {
                let labels = with(&[
                    ("language", lang.clone()),
                    ("version", version.clone()),
                    ("protocol_type", "remoting".into()),
                ]);
                producers.push(labels, gauge(*n));
            }
            for (g, lang, version, mode, n) in &b.consumer_connections {
                let labels = with(&[
                    ("consumer_group", g.clone()),
                    ("language", lang.clone()),
                    ("version", version.clone()),
                    ("consume_mode", mode.clone()),
                    ("protocol_type", "remoting".into()),
                    ("is_system", is_system_group(g)),
                ]);
                consumers.push(labels, gauge(*n));
            }
            if let Some((r, term)) = &b.dledger {
                dledger_role.push(with(&[("role", r.clone())]), gauge(1));
                dledger_term.push(l.clone(), gauge(*term));
            }
            for (q, len, refused) in &b.queues {
                watermark.push(with(&[("processor", q.clone())]), gauge(*len as i64));
                busy.push(with(&[("processor", q.clone())]), counter(*refused));
            }
            perm.push(l.clone(), gauge(b.permission));
            topics.push(l.clone(), gauge(b.topics));
            groups.push(l.clone(), gauge(b.groups));
            let store = with(&[("storage_type", "local".into()), ("storage_medium", "disk".into())]);
            size.push(store.clone(), gauge(b.storage_bytes as i64));
            flush.push(store.clone(), gauge(b.flush_behind_bytes));
            dispatch.push(store, gauge(b.dispatch_behind_bytes));
            quota.push(l.clone(), gauge(b.quota_bytes as i64));
            quota_ratio.push(l.clone(), gauge_f(b.quota_ratio));
            disk_ratio.push(l.clone(), gauge_f(b.disk_ratio));
            if let Some(r) = b.replication_lag_bytes {
                repl.push(l.clone(), gauge(r));
            }
            role.push(with(&[("role", b.role.clone())]), gauge(1));
            for (req, resp, sum, count, buckets) in &b.rpc_latency {
                let labels = with(&[
                    ("protocol_type", "remoting".into()),
                    ("request_code", req.clone()),
                    ("response_code", resp.clone()),
                    ("is_long_polling", "false".into()),
                    ("result", "success".into()),
                ]);
                rpc.push(labels, ConstHistogram { sum: *sum, count: *count, buckets: buckets.clone() });
            }
        }
        in_msgs.encode(e)?;
        in_bytes.encode(e)?;
        out_msgs.encode(e)?;
        out_bytes.encode(e)?;
        lag.encode(e)?;
        inflight.encode(e)?;
        ready.encode(e)?;
        producers.encode(e)?;
        consumers.encode(e)?;
        dledger_role.encode(e)?;
        dledger_term.encode(e)?;
        perm.encode(e)?;
        topics.encode(e)?;
        groups.encode(e)?;
        size.encode(e)?;
        flush.encode(e)?;
        dispatch.encode(e)?;
        watermark.encode(e)?;
        busy.encode(e)?;
        quota.encode(e)?;
        quota_ratio.encode(e)?;
        disk_ratio.encode(e)?;
        repl.encode(e)?;
        role.encode(e)?;
        rpc.encode(e)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_the_broker_identity_and_apache_names() {
        let b = |name: &str| BrokerSample {
            cluster: "C".into(),
            name: name.into(),
            role: "ASYNC_MASTER".into(),
            permission: 6,
            messages_in: vec![("T".into(), 5, 500)],
            messages_out: vec![("T".into(), "g".into(), 3, 300)],
            consumer_lag: vec![("g".into(), "T".into(), 2)],
            queues: vec![("send".into(), 0, 7)],
            ..Default::default()
        };
        let text = encode(ContainerSample { brokers: 2, added: 1, removed: 0, samples: vec![b("a"), b("b")] });
        for name in ["a", "b"] {
            let l = format!("cluster=\"C\",node_id=\"{name}\",node_type=\"broker\",broker_id=\"0\"");
            assert!(
                text.contains(&format!(
                    "rocketmq_messages_in_total{{{l},topic=\"T\",message_type=\"normal\",is_system=\"false\"}} 5"
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "rocketmq_throughput_out_total{{{l},topic=\"T\",consumer_group=\"g\",is_system=\"false\"}} 300"
                )),
                "{text}"
            );
            assert!(text.contains(&format!("rocketmq_consumer_lag_messages{{{l},consumer_group=\"g\",topic=\"T\",is_retry=\"false\",is_system=\"false\"}} 2")), "{text}");
            assert!(
                text.contains(&format!("rocketmq_processor_busy_refusals_total{{{l},processor=\"send\"}} 7")),
                "{text}"
            );
        }
        assert!(text.contains("rocketmq_storage_size_bytes{"), "{text}");
        assert!(text.contains("rocketmq_container_broker_events_total{event=\"add\"} 1"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
