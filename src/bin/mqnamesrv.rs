//! `mqnamesrv`: a standalone NameServer (Apache's `NamesrvStartup`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rmqc::namesrv::{NameServer, NamesrvConfig};
use rmqc::remoting::tls::{TlsConfig, TlsServer};
use rmqc::remoting::RemotingServer;

/// Command line of `mqnamesrv`, as Apache's.
#[derive(Parser, Debug)]
#[command(name = "mqnamesrv", version, about = "RocketMQ-compatible NameServer")]
struct Args {
    /// Name server config properties file (`.toml` read as TOML).
    #[arg(short = 'c', long = "configFile")]
    config_file: Option<PathBuf>,
    /// Print all config items and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print_config: bool,
    /// Name server address list (accepted for compatibility; a NameServer does not use it).
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv_addr: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (config, tls, warnings) = match &args.config_file {
        Some(path) => match NamesrvConfig::load_with_tls(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => (NamesrvConfig::default(), TlsConfig::default(), Vec::new()),
    };
    if args.print_config {
        print!("{}", config.to_properties());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stdout)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    for w in &warnings {
        tracing::warn!("{w}");
    }
    // Read the certificate files before the runtime starts.
    let tls = match tls.server() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("The Name Server failed to start: TLS: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, tls))
}

async fn run(config: NamesrvConfig, tls: Option<Arc<TlsServer>>) -> ExitCode {
    // Before the port opens: a SIGTERM during start-up is kept and shuts down once started.
    let mut shutdown = rmqc::util::ShutdownSignal::install();
    let server = RemotingServer::new(rmqc::remoting::ServerConfig { tls, ..config.server_config() });
    let bind = server.config().bind_address;
    let ns = match NameServer::start(config, &server).await {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("The Name Server failed to start: {e}");
            server.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    println!("The Name Server boot success. serializeType=JSON, address {bind}:{}", ns.port());
    shutdown.wait().await;
    tracing::info!("shutdown signal received");
    ns.shutdown().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}
