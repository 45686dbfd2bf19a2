//! `mqbench`: load tool for any RocketMQ-compatible NameServer and broker.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use rmqc::bench::{self, ConsumerOptions, Event, ProducerOptions, SendMode, Summary};
use rmqc::client::tls::TlsArgs;

/// Throughput and latency of a RocketMQ-compatible cluster, like Apache's benchmark tool with
/// percentiles added.
#[derive(Parser, Debug)]
#[command(name = "mqbench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Sync,
    Async,
    Oneway,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send messages and report send TPS and round-trip latency.
    Producer {
        /// NameServer list, host:port;host:port (default: NAMESRV_ADDR).
        #[arg(short = 'n', long = "namesrvAddr", env = "NAMESRV_ADDR")]
        namesrv: String,
        /// Topic (created with 8 queues on every master if it does not exist).
        #[arg(short = 't', long = "topic", default_value = "BenchmarkTest")]
        topic: String,
        /// Requests in flight.
        #[arg(short = 'w', long = "inflight", default_value_t = 64)]
        in_flight: usize,
        /// Body size in bytes.
        #[arg(short = 's', long = "size", default_value_t = 1024)]
        size: usize,
        /// Stop after this many messages.
        #[arg(short = 'q', long = "count")]
        count: Option<u64>,
        /// Stop after this many seconds (default 10 when no count is given).
        #[arg(short = 'd', long = "duration")]
        duration: Option<u64>,
        /// Send mode.
        #[arg(long = "mode", value_enum, default_value = "async")]
        mode: Mode,
        /// Messages per request (SEND_BATCH_MESSAGE when > 1).
        #[arg(long = "batch", default_value_t = 1)]
        batch: usize,
        /// Give every message a key (the broker indexes it).
        #[arg(long = "keys")]
        keys: bool,
        /// Only the queues of this broker group.
        #[arg(short = 'b', long = "brokerName")]
        broker_name: Option<String>,
        /// Seconds between progress lines.
        #[arg(long = "interval", default_value_t = 5)]
        interval: u64,
        /// Milliseconds between route refreshes (Apache clients' pollNameServerInterval, 30000
        /// there); the route is also read again right after a failure a new route may fix.
        #[arg(long = "pollNameServerInterval", default_value_t = 1000)]
        route_refresh_ms: u64,
        /// At most this many requests per second overall, spread evenly over the run (to measure
        /// latency below the maximum rate, e.g. at half of it); `-w` still caps those in flight.
        #[arg(long = "rate")]
        rate: Option<u64>,
        /// End with one JSON object on the last line.
        #[arg(long = "json")]
        json: bool,
    },
    /// Consume messages and report consume TPS and end-to-end latency (born to consumed).
    Consumer {
        /// NameServer list.
        #[arg(short = 'n', long = "namesrvAddr", env = "NAMESRV_ADDR")]
        namesrv: String,
        /// Topic.
        #[arg(short = 't', long = "topic", default_value = "BenchmarkTest")]
        topic: String,
        /// Consumer group.
        #[arg(short = 'g', long = "group", default_value = "benchmark_consumer")]
        group: String,
        /// Start from the first message (default: from the current end).
        #[arg(long = "from-start")]
        from_start: bool,
        /// Stop after this many messages.
        #[arg(short = 'q', long = "count")]
        count: Option<u64>,
        /// Stop after this many seconds (default 10 when no count is given).
        #[arg(short = 'd', long = "duration")]
        duration: Option<u64>,
        /// Seconds between progress lines.
        #[arg(long = "interval", default_value_t = 5)]
        interval: u64,
        /// Milliseconds between route refreshes (Apache clients' pollNameServerInterval, 30000
        /// there); the route is also read again right after a failure a new route may fix.
        #[arg(long = "pollNameServerInterval", default_value_t = 1000)]
        route_refresh_ms: u64,
        /// End with one JSON object on the last line.
        #[arg(long = "json")]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqbench: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let tls = match cli.tls.client() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mqbench: TLS: {e}");
            return ExitCode::from(1);
        }
    };
    let (result, json) = rt.block_on(async {
        match cli.command {
            Command::Producer {
                namesrv,
                topic,
                in_flight,
                size,
                count,
                duration,
                mode,
                batch,
                keys,
                broker_name,
                interval,
                route_refresh_ms,
                rate,
                json,
            } => {
                let duration = duration.or(if count.is_none() { Some(10) } else { None }).map(Duration::from_secs);
                let mode = match mode {
                    Mode::Sync => SendMode::Sync,
                    Mode::Async => SendMode::Async,
                    Mode::Oneway => SendMode::Oneway,
                };
                let opts = ProducerOptions {
                    namesrv,
                    topic,
                    broker_name,
                    in_flight,
                    size,
                    count,
                    duration,
                    mode,
                    batch,
                    keys,
                    report_every: Duration::from_secs(interval.max(1)),
                    route_refresh: Duration::from_millis(route_refresh_ms),
                    rate,
                    tls,
                };
                (bench::run_producer(opts, print_event).await, json)
            }
            Command::Consumer {
                namesrv,
                topic,
                group,
                from_start,
                count,
                duration,
                interval,
                route_refresh_ms,
                json,
            } => {
                let duration = duration.or(if count.is_none() { Some(10) } else { None }).map(Duration::from_secs);
                let opts = ConsumerOptions {
                    namesrv,
                    topic,
                    group,
                    from_start,
                    count,
                    duration,
                    report_every: Duration::from_secs(interval.max(1)),
                    route_refresh: Duration::from_millis(route_refresh_ms),
                    tls,
                };
                (bench::run_consumer(opts, print_event).await, json)
            }
        }
    });
    match result {
        Ok(s) => {
            print_summary(&s);
            if json {
                println!("{}", serde_json::to_string(&s).unwrap_or_default());
            }
            if s.sent == 0 {
                eprintln!("mqbench: nothing was sent or received");
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mqbench: {e}");
            ExitCode::from(1)
        }
    }
}

/// Progress lines go to stdout, notices (first failure of a kind, route changes) to stderr.
fn print_event(e: Event) {
    match e {
        Event::Progress(l) => println!("{l}"),
        Event::Notice(l) => eprintln!("mqbench: {l}"),
    }
}

fn print_summary(s: &Summary) {
    println!(
        "[Complete] messages: {} in {:.2} s, served {:.2} s | TPS: {:.0} over the served time, {:.0} over the run | Avg RT(ms): {:.3} | p50: {:.3} | p99: {:.3} | p999: {:.3} | Max RT(ms): {:.3} | failures: {}",
        s.sent,
        s.seconds,
        s.served_seconds,
        s.tps,
        s.overall_tps,
        s.avg_ms,
        s.p50_ms,
        s.p99_ms,
        s.p999_ms,
        s.max_ms,
        s.failures
    );
    if !s.failures_by_kind.is_empty() {
        let kinds: Vec<String> = s.failures_by_kind.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("[Complete] failures by kind: {}", kinds.join(" | "));
    }
}
