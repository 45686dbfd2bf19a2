//! `mqadmin`: administration commands, over the wire only. Argument parsing and printing; the
//! commands live in `rmqc::admin`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rmqc::admin::{cluster, consumer, container, message, topic, Admin, AdminError};
use rmqc::remoting::RemotingClient;

/// RocketMQ admin tool for the BrokerContainer.
#[derive(Parser, Debug)]
#[command(name = "mqadmin", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The NameServer list every command accepts.
#[derive(Args, Debug, Clone, Default)]
struct Ns {
    /// NameServer address list, host:port;host:port (default: $NAMESRV_ADDR).
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Add a broker to a BrokerContainer from a broker config file on the container's host.
    #[command(name = "addBroker")]
    AddBroker {
        #[command(flatten)]
        ns: Ns,
        /// Container admin address, host:port.
        #[arg(short = 'c', long = "brokerContainerAddr")]
        container: String,
        /// Broker config file path (as the container sees it).
        #[arg(short = 'b', long = "brokerConfigPath")]
        config_path: String,
    },
    /// Remove a broker from a BrokerContainer.
    #[command(name = "removeBroker")]
    RemoveBroker {
        #[command(flatten)]
        ns: Ns,
        /// Container admin address, host:port.
        #[arg(short = 'c', long = "brokerContainerAddr")]
        container: String,
        /// The broker, clusterName:brokerName:brokerId.
        #[arg(short = 'b', long = "brokerIdentity")]
        identity: String,
        /// Wait for consumers to catch up before removing.
        #[arg(long = "drain")]
        drain: bool,
        /// Drain time limit in milliseconds.
        #[arg(long = "drainTimeout")]
        drain_timeout: Option<u64>,
    },
    /// List all clusters and their brokers.
    #[command(name = "clusterList")]
    ClusterList {
        #[command(flatten)]
        ns: Ns,
    },
    /// Print the runtime status of a broker or of every broker of a cluster.
    #[command(name = "brokerStatus")]
    BrokerStatus {
        #[command(flatten)]
        ns: Ns,
        /// Broker address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: Option<String>,
        /// Cluster name.
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// Print the config of a broker (or of a container, its admin address), or of a whole cluster.
    #[command(name = "getBrokerConfig")]
    GetBrokerConfig {
        #[command(flatten)]
        ns: Ns,
        /// Broker or container address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: Option<String>,
        /// Cluster name.
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// Ask a broker to delete its expired files now (TRIGGER_DELETE_FILES).
    #[command(name = "triggerDeleteFiles")]
    TriggerDeleteFiles {
        /// Broker address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: String,
    },
    /// Update one config key of a broker, a container, or every broker of a cluster.
    #[command(name = "updateBrokerConfig")]
    UpdateBrokerConfig {
        #[command(flatten)]
        ns: Ns,
        /// Broker or container address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: Option<String>,
        /// Cluster name.
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        /// Key.
        #[arg(short = 'k', long = "key")]
        key: String,
        /// Value.
        #[arg(short = 'v', long = "value")]
        value: String,
    },
    /// Update or create a topic on a broker or on every master of a cluster.
    #[command(name = "updateTopic")]
    UpdateTopic {
        #[command(flatten)]
        ns: Ns,
        /// Broker address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: Option<String>,
        /// Cluster name.
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        /// Topic name.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Read queue number.
        #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
        read: i32,
        /// Write queue number.
        #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
        write: i32,
        /// Permission (2 W, 4 R, 6 RW).
        #[arg(short = 'p', long = "perm", default_value_t = 6)]
        perm: i32,
        /// Order topic (true|false).
        #[arg(short = 'o', long = "order", default_value_t = false, action = clap::ArgAction::Set)]
        order: bool,
    },
    /// Delete a topic from the masters of a cluster and from the NameServers.
    #[command(name = "deleteTopic")]
    DeleteTopic {
        #[command(flatten)]
        ns: Ns,
        /// Cluster name.
        #[arg(short = 'c', long = "clusterName")]
        cluster: String,
        /// Topic name.
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// List every topic of the NameServer.
    #[command(name = "topicList")]
    TopicList {
        #[command(flatten)]
        ns: Ns,
    },
    /// Print a topic's route.
    #[command(name = "topicRoute")]
    TopicRoute {
        #[command(flatten)]
        ns: Ns,
        /// Topic name.
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// Print the offsets of every queue of a topic.
    #[command(name = "topicStatus")]
    TopicStatus {
        #[command(flatten)]
        ns: Ns,
        /// Topic name.
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// Print a consumer group's progress.
    #[command(name = "consumerProgress")]
    ConsumerProgress {
        #[command(flatten)]
        ns: Ns,
        /// Consumer group.
        #[arg(short = 'g', long = "groupName")]
        group: String,
        /// Only this topic.
        #[arg(short = 't', long = "topicName")]
        topic: Option<String>,
    },
    /// Move a group's offsets on a topic to a point in time (consumers follow on their next pull).
    #[command(name = "resetOffsetByTime")]
    ResetOffsetByTime {
        #[command(flatten)]
        ns: Ns,
        /// Consumer group.
        #[arg(short = 'g', long = "group")]
        group: String,
        /// Topic.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Milliseconds, `now`, or yyyy-MM-dd#HH:mm:ss:SSS.
        #[arg(short = 's', long = "timestamp")]
        timestamp: String,
        /// Force the reset even to a later offset.
        #[arg(short = 'f', long = "force", default_value_t = true, action = clap::ArgAction::Set)]
        force: bool,
    },
    /// Copy a group's offsets on a topic to another group.
    #[command(name = "cloneGroupOffset")]
    CloneGroupOffset {
        #[command(flatten)]
        ns: Ns,
        /// Source group.
        #[arg(short = 's', long = "srcGroup")]
        src: String,
        /// Destination group.
        #[arg(short = 'd', long = "destGroup")]
        dest: String,
        /// Topic.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Copy even if the source group is not online.
        #[arg(short = 'o', long = "offline", default_value_t = false, action = clap::ArgAction::Set)]
        offline: bool,
    },
    /// Send one message.
    #[command(name = "sendMessage")]
    SendMessage {
        #[command(flatten)]
        ns: Ns,
        /// Topic name.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Message body (UTF-8).
        #[arg(short = 'p', long = "body")]
        body: String,
        /// Message keys.
        #[arg(short = 'k', long = "key")]
        keys: Option<String>,
        /// Message tags.
        #[arg(short = 'c', long = "tags")]
        tags: Option<String>,
        /// Target broker name.
        #[arg(short = 'b', long = "broker")]
        broker: Option<String>,
        /// Target queue id (needs -b).
        #[arg(short = 'i', long = "qid")]
        queue_id: Option<i32>,
    },
    /// Send one transactional message: a half message, then END_TRANSACTION (commit, rollback or
    /// unknown: left to the broker's check-back).
    #[command(name = "sendTransactionMessage")]
    SendTransactionMessage {
        #[command(flatten)]
        ns: Ns,
        /// Topic name.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Message body (UTF-8).
        #[arg(short = 'p', long = "body")]
        body: String,
        /// Message keys.
        #[arg(short = 'k', long = "key")]
        keys: Option<String>,
        /// Message tags.
        #[arg(short = 'c', long = "tags")]
        tags: Option<String>,
        /// Target broker name.
        #[arg(short = 'b', long = "broker")]
        broker: Option<String>,
        /// Target queue id (needs -b).
        #[arg(short = 'i', long = "qid")]
        queue_id: Option<i32>,
        /// Producer group (the broker checks back on it).
        #[arg(short = 'g', long = "producerGroup", default_value = "TOOLS_PRODUCER")]
        group: String,
        /// How to end it: commit, rollback or unknown.
        #[arg(short = 's', long = "state", default_value = "commit")]
        state: String,
    },
    /// Consume (print) messages of a topic. With -g the group's offsets are used and committed.
    #[command(name = "consumeMessage")]
    ConsumeMessage {
        #[command(flatten)]
        ns: Ns,
        /// Topic name.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Consumer group.
        #[arg(short = 'g', long = "consumerGroup")]
        group: Option<String>,
        /// Number of messages to consume.
        #[arg(short = 'c', long = "MessageNumber", default_value_t = 128)]
        count: u64,
        /// Broker name.
        #[arg(short = 'b', long = "brokerName")]
        broker: Option<String>,
        /// Queue id (needs -b).
        #[arg(short = 'i', long = "queueId")]
        queue_id: Option<i32>,
        /// Start offset.
        #[arg(short = 'o', long = "offset")]
        offset: Option<i64>,
        /// Tag expression, e.g. "TagA || TagB".
        #[arg(short = 's', long = "subExpression", default_value = "*")]
        tags: String,
        /// Time limit in milliseconds.
        #[arg(long = "timeout", default_value_t = 30_000)]
        timeout: u64,
    },
    /// Query a message by its offset message id (or by UNIQ_KEY with -t).
    #[command(name = "queryMsgById")]
    QueryMsgById {
        #[command(flatten)]
        ns: Ns,
        /// Message id.
        #[arg(short = 'i', long = "msgId")]
        msg_id: String,
        /// Topic (needed to look the id up as a UNIQ_KEY).
        #[arg(short = 't', long = "topic")]
        topic: Option<String>,
    },
    /// Query messages by key.
    #[command(name = "queryMsgByKey")]
    QueryMsgByKey {
        #[command(flatten)]
        ns: Ns,
        /// Topic name.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Message key.
        #[arg(short = 'k', long = "msgKey")]
        key: String,
        /// Begin timestamp (ms).
        #[arg(short = 'b', long = "beginTimestamp")]
        begin: Option<i64>,
        /// End timestamp (ms).
        #[arg(short = 'e', long = "endTimestamp")]
        end: Option<i64>,
        /// Maximum number of messages per broker.
        #[arg(short = 'm', long = "maxNum")]
        max_num: Option<i32>,
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
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(AdminError::Partial { output, failed }) => {
                print!("{output}");
                eprintln!("mqadmin: failed: {failed}");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("mqadmin: {e}");
                ExitCode::from(1)
            }
        }
    })
}

fn admin_with(client: &RemotingClient, ns: &Ns) -> Admin {
    let env = std::env::var("NAMESRV_ADDR").ok();
    Admin::new(client.clone(), ns.namesrv.as_deref().or(env.as_deref()))
}

async fn run(client: &RemotingClient, cmd: Command) -> Result<String, AdminError> {
    match cmd {
        Command::AddBroker { ns: _, container, config_path } => {
            container::add_broker(client, &container, &config_path).await
        }
        Command::RemoveBroker { ns: _, container, identity, drain, drain_timeout } => {
            let id: container::BrokerIdentity = identity.parse()?;
            if drain_timeout.is_some() && !drain {
                return Err(AdminError::Usage("--drainTimeout needs --drain".into()));
            }
            container::remove_broker(client, &container, &id, drain, drain_timeout.map(Duration::from_millis)).await
        }
        Command::ClusterList { ns } => cluster::cluster_list(&admin_with(client, &ns)).await,
        Command::BrokerStatus { ns, broker_addr, cluster } => {
            cluster::broker_status(&admin_with(client, &ns), broker_addr.as_deref(), cluster.as_deref()).await
        }
        Command::TriggerDeleteFiles { broker_addr } => {
            rmqc::admin::trigger_delete_files(client, &broker_addr).await?;
            Ok(format!("success, {broker_addr}"))
        }
        Command::GetBrokerConfig { ns, broker_addr, cluster } => {
            cluster::get_config(&admin_with(client, &ns), broker_addr.as_deref(), cluster.as_deref()).await
        }
        Command::UpdateBrokerConfig { ns, broker_addr, cluster, key, value } => {
            cluster::update_config(&admin_with(client, &ns), broker_addr.as_deref(), cluster.as_deref(), &key, &value)
                .await
        }
        Command::UpdateTopic { ns, broker_addr, cluster, topic, read, write, perm, order } => {
            let spec = topic::TopicSpec {
                read_queue_nums: read,
                write_queue_nums: write,
                perm,
                order,
                ..topic::TopicSpec::new(&topic)
            };
            topic::update_topic(&admin_with(client, &ns), broker_addr.as_deref(), cluster.as_deref(), &spec).await
        }
        Command::DeleteTopic { ns, cluster, topic } => {
            topic::delete_topic(&admin_with(client, &ns), &cluster, &topic).await
        }
        Command::TopicList { ns } => topic::topic_list(&admin_with(client, &ns)).await,
        Command::TopicRoute { ns, topic } => topic::topic_route_json(&admin_with(client, &ns), &topic).await,
        Command::TopicStatus { ns, topic } => topic::topic_status(&admin_with(client, &ns), &topic).await,
        Command::ConsumerProgress { ns, group, topic } => {
            consumer::consumer_progress(&admin_with(client, &ns), &group, topic.as_deref()).await
        }
        Command::ResetOffsetByTime { ns, group, topic, timestamp, force } => {
            match consumer::parse_reset_time(&timestamp) {
                Ok(ts) => consumer::reset_offset_by_time(&admin_with(client, &ns), &group, &topic, ts, force).await,
                Err(e) => Err(e),
            }
        }
        Command::CloneGroupOffset { ns, src, dest, topic, offline } => {
            consumer::clone_group_offset(&admin_with(client, &ns), &src, &dest, &topic, offline).await
        }
        Command::SendMessage { ns, topic, body, keys, tags, broker, queue_id } => {
            let args = message::SendArgs { topic, body, keys, tags, broker_name: broker, queue_id, transaction: None };
            message::send_message(&admin_with(client, &ns), &args).await
        }
        Command::SendTransactionMessage { ns, topic, body, keys, tags, broker, queue_id, group, state } => {
            match message::parse_tx_state(&state) {
                Ok(st) => {
                    let transaction = Some((group, st));
                    let args =
                        message::SendArgs { topic, body, keys, tags, broker_name: broker, queue_id, transaction };
                    message::send_transaction_message(&admin_with(client, &ns), &args).await
                }
                Err(e) => Err(e),
            }
        }
        Command::ConsumeMessage { ns, topic, group, count, broker, queue_id, offset, tags, timeout } => {
            let args = message::ConsumeArgs {
                topic,
                group,
                count,
                broker_name: broker,
                queue_id,
                offset,
                tags,
                timeout: Duration::from_millis(timeout),
            };
            message::consume_message(&admin_with(client, &ns), &args).await
        }
        Command::QueryMsgById { ns, msg_id, topic } => {
            message::query_msg_by_id(&admin_with(client, &ns), &msg_id, topic.as_deref()).await
        }
        Command::QueryMsgByKey { ns, topic, key, begin, end, max_num } => {
            message::query_msg_by_key(&admin_with(client, &ns), &topic, &key, begin, end, max_num).await
        }
    }
}
