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
        let important = ["listenPort", "namesrvAddr", "brokerConfigPaths", "embeddedNamesrvEnable", "logRoot"];
        for (k, v) in loaded.config.entries() {
            if args.print_config || important.contains(&k) {
                println!("{k}={v}");
            }
        }
        return ExitCode::SUCCESS;
    }
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let _router = rmqc::logging::init_with_router(std::path::Path::new(&loaded.config.log_root));
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
    rt.block_on(run(loaded))
}

async fn run(loaded: LoadedContainerConfig) -> ExitCode {
    let container = match BrokerContainer::start(loaded).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mqbrokercontainer: {e}");
            return ExitCode::from(1);
        }
    };
    let ns = container.config().namesrv_addr.clone().unwrap_or_else(|| "(none)".into());
    println!("The broker container boot success. serializeType=JSON and name server is {ns}");
    println!("Container admin port: {} (and {})", container.addr(), container.config().listen_port - 2);
    if let Some(p) = container.embedded_namesrv_port() {
        println!("The Name Server boot success (embedded). address 127.0.0.1:{p}");
    }
    for plan in container.planned() {
        let c = &plan.config;
        println!(
            "Broker [{}-{}] config {}: cluster={} role={} listenPort={} (validated; hosting brokers arrives with the broker issue)",
            c.broker_name,
            c.broker_id,
            plan.path.display(),
            c.broker_cluster_name,
            c.broker_role,
            c.listen_port
        );
        for n in &plan.notes {
            println!("  note: {n}");
        }
    }
    println!("Hosting {} broker config(s). Press Ctrl-C to stop.", container.planned().len());
    rmqc::util::wait_for_shutdown_signal().await;
    println!("Shutting down the broker container...");
    container.shutdown().await;
    ExitCode::SUCCESS
}
