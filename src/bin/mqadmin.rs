//! `mqadmin`: administration commands, over the wire only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rmqc::admin;
use rmqc::remoting::RemotingClient;

/// RocketMQ admin tool for the BrokerContainer.
#[derive(Parser, Debug)]
#[command(name = "mqadmin", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the config of a broker, or of a container (its admin address).
    #[command(name = "getBrokerConfig")]
    GetBrokerConfig {
        /// Broker or container address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: String,
    },
    /// Print a broker's runtime status (GET_BROKER_RUNTIME_INFO), including disk usage and quota.
    #[command(name = "brokerStatus")]
    BrokerStatus {
        /// Broker address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: String,
    },
    /// Ask a broker to delete its expired files now (TRIGGER_DELETE_FILES).
    #[command(name = "triggerDeleteFiles")]
    TriggerDeleteFiles {
        /// Broker address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: String,
    },
    /// Update one config key of a broker, or of a container.
    #[command(name = "updateBrokerConfig")]
    UpdateBrokerConfig {
        /// Broker or container address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: String,
        /// Key.
        #[arg(short = 'k', long = "key")]
        key: String,
        /// Value.
        #[arg(short = 'v', long = "value")]
        value: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqadmin: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async {
        let client = RemotingClient::default();
        let result = run(&client, cli.command).await;
        client.shutdown().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mqadmin: {e}");
                ExitCode::from(1)
            }
        }
    })
}

async fn run(client: &RemotingClient, cmd: Command) -> Result<(), admin::AdminError> {
    match cmd {
        Command::GetBrokerConfig { broker_addr } => {
            let text = admin::get_broker_config(client, &broker_addr).await?;
            println!("============{broker_addr}============");
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    println!("{k:<50}=  {v}");
                }
            }
        }
        Command::BrokerStatus { broker_addr } => {
            for (k, v) in admin::broker_runtime_info(client, &broker_addr).await? {
                println!("{k:<32}: {v}");
            }
        }
        Command::TriggerDeleteFiles { broker_addr } => {
            admin::trigger_delete_files(client, &broker_addr).await?;
            println!("success, {broker_addr}");
        }
        Command::UpdateBrokerConfig { broker_addr, key, value } => {
            admin::update_broker_config(client, &broker_addr, &key, &value).await?;
            println!("update broker config success, {broker_addr}");
        }
    }
    Ok(())
}
