//! `mqbrokercontainer`: starts a BrokerContainer (RIP-31).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rmqc::config::Configurable;
use rmqc::container::config::LoadedContainerConfig;
use rmqc::container::BrokerContainer;

/// Start a RocketMQ BrokerContainer: one process hosting many brokers behind one shared transport.
#[derive(Parser, Debug)]
#[command(name = "mqbrokercontainer", version)]
struct Args {
    /// Container config file (Java properties or .toml).
    #[arg(short = 'c', long = "configFile")]
    config_file: Option<PathBuf>,
    /// Broker config files separated by ':' (overrides brokerConfigPaths).
    #[arg(short = 'b', long = "brokerConfigFiles")]
    broker_config_files: Option<String>,
    /// Name servers, 'host:port;host:port'.
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv_addr: Option<String>,
    /// Print all config items and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print_config: bool,
    /// Print important config items and exit.
    #[arg(short = 'm', long = "printImportantConfig")]
    print_important: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let loaded = match &args.config_file {
        Some(p) => LoadedContainerConfig::load(p, args.broker_config_files.as_deref(), args.namesrv_addr.as_deref()),
        None => LoadedContainerConfig::defaults(args.broker_config_files.as_deref(), args.namesrv_addr.as_deref()),
    };
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mqbrokercontainer: {e}");
            return ExitCode::from(3);
        }
    };
    if args.print_config || args.print_important {
        let important =
            ["listenPort", "namesrvAddr", "brokerConfigPaths", "embeddedNamesrvEnable", "logRoot", "tls.server.mode"];
        let tls = loaded.tls.entries();
        for (k, v) in loaded.shown_entries(&loaded.config).into_iter().chain(tls) {
            if args.print_config || important.contains(&k) {
                println!("{k}={v}");
            }
        }
        return ExitCode::SUCCESS;
    }
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let router = rmqc::logging::init_with_router(std::path::Path::new(&loaded.config.log_root));
    let from_cli = args.broker_config_files.is_some();
    let threads = loaded.config.server_worker_threads;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all().thread_name("rmqc-worker");
    if threads > 0 {
        rt.worker_threads(threads);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqbrokercontainer: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(loaded, from_cli, router))
}

async fn run(loaded: LoadedContainerConfig, from_cli: bool, router: rmqc::logging::LogRouter) -> ExitCode {
    // Before any port opens: a SIGTERM during start-up is kept and shuts down once started.
    let mut shutdown = rmqc::util::ShutdownSignal::install();
    let container = match BrokerContainer::start(loaded, from_cli, Some(router)).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mqbrokercontainer: {e}");
            return ExitCode::from(1);
        }
    };
    let cfg = container.config();
    let ns = cfg.namesrv_addr.clone().unwrap_or_else(|| "(none)".into());
    if let Some(p) = container.embedded_namesrv_port() {
        println!("The Name Server boot success (embedded). address 127.0.0.1:{p}");
    }
    println!("The broker container boot success. serializeType=JSON and name server is {ns}");
    let hosted = container.hosted().await;
    println!(
        "Container {} (admin port, and {}) hosts {} broker(s). Logs: {}. Press Ctrl-C to stop.",
        container.addr(),
        cfg.listen_port - 2,
        hosted.len(),
        cfg.log_root
    );
    if !hosted.is_empty() {
        println!();
        println!("Try it (in another terminal):");
        println!("  cargo run --release --bin mqadmin -- clusterList -n {ns}");
        println!("  cargo run --release --bin mqadmin -- sendMessage -n {ns} -t TopicTest -p 'hello'");
        println!("  cargo run --release --bin mqadmin -- consumeMessage -n {ns} -t TopicTest -g demo-group");
    }
    shutdown.wait().await;
    println!("Shutting down the broker container...");
    container.shutdown().await;
    ExitCode::SUCCESS
}
