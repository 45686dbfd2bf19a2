//! `mqadmin`: administration commands, over the wire only. Argument parsing and printing; the
//! commands live in `rmqc::admin`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rmqc::admin::{auth, client_admin, cluster, consumer, container, message, pop, topic, Admin, AdminError};
use rmqc::client::tls::TlsArgs;
use rmqc::remoting::{ClientConfig, RemotingClient};

/// RocketMQ admin tool for the BrokerContainer.
#[derive(Parser, Debug)]
#[command(name = "mqadmin", version)]
struct Cli {
    /// Access key (ACL 2.0 username) to sign every request with; give it before the command.
    #[arg(short = 'a', long = "accessKey", env = "ROCKETMQ_ACCESS_KEY")]
    access_key: Option<String>,
    /// Secret key (the user's password) to sign with; give it before the command.
    #[arg(short = 's', long = "secretKey", env = "ROCKETMQ_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Where a user or ACL command goes.
#[derive(Args, Debug, Clone, Default)]
struct AuthTarget {
    #[command(flatten)]
    ns: Ns,
    /// Broker (or container admin) address, host:port.
    #[arg(short = 'b', long = "brokerAddr")]
    broker_addr: Option<String>,
    /// Every master of this cluster.
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
}

/// The NameServer list every command accepts.
#[derive(Args, Debug, Clone, Default)]
struct Ns {
    /// NameServer address list, host:port;host:port (default: $NAMESRV_ADDR).
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv: Option<String>,
}

/// What `sendMessage` and `sendTransactionMessage` send.
#[derive(Args, Debug)]
struct MsgArgs {
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
}

impl MsgArgs {
    fn into_send(self, transaction: Option<(String, message::TxState)>) -> message::SendArgs {
        let MsgArgs { topic, body, keys, tags, broker, queue_id } = self;
        message::SendArgs { topic, body, keys, tags, broker_name: broker, queue_id, transaction }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create an ACL 2.0 user.
    #[command(name = "createUser")]
    CreateUser {
        #[command(flatten)]
        t: AuthTarget,
        /// Username (access key).
        #[arg(short = 'u', long = "username")]
        username: String,
        /// Password (secret key).
        #[arg(short = 'p', long = "password")]
        password: String,
        /// Super or Normal (default Normal).
        #[arg(short = 't', long = "userType")]
        user_type: Option<String>,
    },
    /// Update an ACL 2.0 user (the fields given).
    #[command(name = "updateUser")]
    UpdateUser {
        #[command(flatten)]
        t: AuthTarget,
        /// Username.
        #[arg(short = 'u', long = "username")]
        username: String,
        /// New password.
        #[arg(short = 'p', long = "password")]
        password: Option<String>,
        /// Super or Normal.
        #[arg(short = 't', long = "userType")]
        user_type: Option<String>,
        /// enable or disable.
        #[arg(short = 's', long = "userStatus")]
        user_status: Option<String>,
    },
    /// Delete an ACL 2.0 user (and its ACL).
    #[command(name = "deleteUser")]
    DeleteUser {
        #[command(flatten)]
        t: AuthTarget,
        /// Username.
        #[arg(short = 'u', long = "username")]
        username: String,
    },
    /// Show a user (never its password).
    #[command(name = "getUser")]
    GetUser {
        #[command(flatten)]
        t: AuthTarget,
        /// Username.
        #[arg(short = 'u', long = "username")]
        username: String,
    },
    /// List users (never their passwords).
    #[command(name = "listUser")]
    ListUser {
        #[command(flatten)]
        t: AuthTarget,
        /// Only usernames containing this.
        #[arg(short = 'f', long = "filter")]
        filter: Option<String>,
    },
    /// Create an ACL: entries for the resources with the actions, source IPs and decision.
    #[command(name = "createAcl")]
    CreateAcl {
        #[command(flatten)]
        t: AuthTarget,
        /// Subject, User:<name>.
        #[arg(short = 's', long = "subject")]
        subject: String,
        /// Resources, comma-separated (Topic:t, Topic:t*, Group:g, Topic:*, *).
        #[arg(short = 'r', long = "resources")]
        resources: String,
        /// Actions, comma-separated (Pub, Sub, Create, Update, Delete, Get, List, All).
        #[arg(short = 'a', long = "actions")]
        actions: String,
        /// Source IPs or CIDRs, comma-separated.
        #[arg(short = 'i', long = "sourceIp")]
        source_ips: Option<String>,
        /// Allow or Deny.
        #[arg(short = 'd', long = "decision")]
        decision: String,
    },
    /// Update an ACL (entries of the same resource are replaced).
    #[command(name = "updateAcl")]
    UpdateAcl {
        #[command(flatten)]
        t: AuthTarget,
        /// Subject, User:<name>.
        #[arg(short = 's', long = "subject")]
        subject: String,
        /// Resources, comma-separated.
        #[arg(short = 'r', long = "resources")]
        resources: String,
        /// Actions, comma-separated.
        #[arg(short = 'a', long = "actions")]
        actions: String,
        /// Source IPs or CIDRs, comma-separated.
        #[arg(short = 'i', long = "sourceIp")]
        source_ips: Option<String>,
        /// Allow or Deny.
        #[arg(short = 'd', long = "decision")]
        decision: String,
    },
    /// Delete the entries of resources from an ACL, or the whole ACL without -r.
    #[command(name = "deleteAcl")]
    DeleteAcl {
        #[command(flatten)]
        t: AuthTarget,
        /// Subject, User:<name>.
        #[arg(short = 's', long = "subject")]
        subject: String,
        /// Resources, comma-separated.
        #[arg(short = 'r', long = "resources")]
        resources: Option<String>,
    },
    /// Show a subject's ACL.
    #[command(name = "getAcl")]
    GetAcl {
        #[command(flatten)]
        t: AuthTarget,
        /// Subject, User:<name>.
        #[arg(short = 's', long = "subject")]
        subject: String,
    },
    /// Copy users from one broker to another.
    #[command(name = "copyUser")]
    CopyUser {
        #[command(flatten)]
        ns: Ns,
        /// Source broker address.
        #[arg(short = 'f', long = "fromBroker")]
        from: String,
        /// Target broker address.
        #[arg(short = 't', long = "toBroker")]
        to: String,
        /// Usernames, comma-separated (default: all).
        #[arg(short = 'u', long = "usernames")]
        usernames: Option<String>,
    },
    /// Copy ACLs from one broker to another.
    #[command(name = "copyAcl")]
    CopyAcl {
        #[command(flatten)]
        ns: Ns,
        /// Source broker address.
        #[arg(short = 'f', long = "fromBroker")]
        from: String,
        /// Target broker address.
        #[arg(short = 't', long = "toBroker")]
        to: String,
        /// Subjects, comma-separated (default: all).
        #[arg(short = 's', long = "subjects")]
        subjects: Option<String>,
    },
    /// List ACLs.
    #[command(name = "listAcl")]
    ListAcl {
        #[command(flatten)]
        t: AuthTarget,
        /// Only subjects containing this.
        #[arg(short = 's', long = "subject")]
        subject: Option<String>,
        /// Only entries whose resource contains this.
        #[arg(short = 'r', long = "resource")]
        resource: Option<String>,
    },
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
        #[command(flatten)]
        msg: MsgArgs,
    },
    /// Send one transactional message: a half message, then END_TRANSACTION (commit, rollback or
    /// unknown: left to the broker's check-back).
    #[command(name = "sendTransactionMessage")]
    SendTransactionMessage {
        #[command(flatten)]
        ns: Ns,
        #[command(flatten)]
        msg: MsgArgs,
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
    /// Set a group's consume mode on a topic: PULL (queues bound to clients) or POP.
    #[command(name = "setConsumeMode")]
    SetConsumeMode {
        #[command(flatten)]
        ns: Ns,
        /// Broker address.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: Option<String>,
        /// Every master of this cluster.
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        /// Topic.
        #[arg(short = 't', long = "topicName")]
        topic: String,
        /// Consumer group.
        #[arg(short = 'g', long = "groupName")]
        group: String,
        /// PULL or POP.
        #[arg(short = 'm', long = "mode")]
        mode: String,
        /// In POP mode, how many other clients' queues each client shares (0: all queues).
        #[arg(short = 'q', long = "popShareQueueNum", default_value_t = 0)]
        pop_share_queue_num: i32,
    },
    /// Pop messages from one broker (POP consumption, for manual testing); prints each message with
    /// the extra info to ack it by.
    #[command(name = "popMessage")]
    PopMessage {
        #[command(flatten)]
        ns: Ns,
        /// Broker address.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: String,
        /// Topic.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Consumer group.
        #[arg(short = 'g', long = "group")]
        group: String,
        /// Queue id (-1: every queue).
        #[arg(short = 'q', long = "queueId", default_value_t = -1, allow_hyphen_values = true)]
        queue_id: i32,
        /// At most this many messages (1..=32).
        #[arg(short = 'c', long = "count", default_value_t = 32)]
        count: i32,
        /// Invisible time, ms.
        #[arg(short = 'i', long = "invisibleTime", default_value_t = 60_000)]
        invisible_time: i64,
        /// Long-poll time, ms.
        #[arg(short = 'p', long = "pollTime", default_value_t = 0)]
        poll_time: i64,
        /// Ordered pop.
        #[arg(long = "order")]
        order: bool,
    },
    /// Acknowledge one popped message.
    #[command(name = "ackMessage")]
    AckMessage {
        #[command(flatten)]
        ns: Ns,
        /// Broker address.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: String,
        /// Topic (the original topic).
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Consumer group.
        #[arg(short = 'g', long = "group")]
        group: String,
        /// Queue id.
        #[arg(short = 'q', long = "queueId")]
        queue_id: i32,
        /// Queue offset of the message.
        #[arg(short = 'o', long = "offset")]
        offset: i64,
        /// The extra info popMessage printed.
        #[arg(short = 'e', long = "extraInfo")]
        extra_info: String,
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
    /// The clients of a consumer group and its subscriptions (GET_CONSUMER_CONNECTION_LIST).
    #[command(name = "consumerConnection")]
    ConsumerConnection {
        #[command(flatten)]
        ns: Ns,
        /// Consumer group.
        #[arg(short = 'g', long = "consumerGroup")]
        group: String,
    },
    /// The running info of a group's clients, asked through the broker (GET_CONSUMER_RUNNING_INFO).
    #[command(name = "consumerStatus")]
    ConsumerStatus {
        #[command(flatten)]
        ns: Ns,
        /// Consumer group.
        #[arg(short = 'g', long = "consumerGroup")]
        group: String,
        /// One client id.
        #[arg(short = 'i', long = "clientId")]
        client: Option<String>,
        /// Ask for the client's thread stacks.
        #[arg(short = 's', long = "jstack", default_value_t = false, action = clap::ArgAction::Set)]
        jstack: bool,
    },
    /// Every group's consume progress on one broker (GET_BROKER_CONSUME_STATS).
    #[command(name = "brokerConsumeStats")]
    BrokerConsumeStats {
        #[command(flatten)]
        ns: Ns,
        /// Broker address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: String,
        /// Order topics only.
        #[arg(short = 'o', long = "order", default_value_t = false, action = clap::ArgAction::Set)]
        order: bool,
    },
    /// Entries of a consume queue (QUERY_CONSUME_QUEUE).
    #[command(name = "queryCq")]
    QueryCq {
        #[command(flatten)]
        ns: Ns,
        /// Topic.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Queue id.
        #[arg(short = 'q', long = "queue")]
        queue_id: i32,
        /// First queue offset.
        #[arg(short = 'i', long = "index")]
        index: i64,
        /// How many entries.
        #[arg(short = 'c', long = "count", default_value_t = 10)]
        count: i32,
        /// Broker address (default: the first master of the topic).
        #[arg(short = 'b', long = "broker")]
        broker_addr: Option<String>,
        /// Consumer group (shows its subscription).
        #[arg(short = 'g', long = "consumer")]
        group: Option<String>,
    },
    /// Delete consume queues that hold only expired messages (CLEAN_EXPIRED_CONSUMEQUEUE).
    #[command(name = "cleanExpiredCQ")]
    CleanExpiredCq {
        #[command(flatten)]
        ns: Ns,
        /// Broker address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: Option<String>,
        /// Cluster name.
        #[arg(short = 'c', long = "cluster")]
        cluster: Option<String>,
    },
    /// Delete consume queues of topics the broker no longer has (CLEAN_UNUSED_TOPIC).
    #[command(name = "cleanUnusedTopic")]
    CleanUnusedTopic {
        #[command(flatten)]
        ns: Ns,
        /// Broker address, host:port.
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: Option<String>,
        /// Cluster name.
        #[arg(short = 'c', long = "cluster")]
        cluster: Option<String>,
    },
    /// Per topic and group: accumulation, TPS in and out, messages in 24 h (VIEW_BROKER_STATS_DATA).
    #[command(name = "statsAll")]
    StatsAll {
        #[command(flatten)]
        ns: Ns,
        /// One topic.
        #[arg(short = 't', long = "topic")]
        topic: Option<String>,
        /// Only topics with traffic.
        #[arg(short = 'a', long = "activeTopic", default_value_t = false)]
        active: bool,
    },
    /// A consumer group's subscription group config on every master.
    #[command(name = "getConsumerConfig")]
    GetConsumerConfig {
        #[command(flatten)]
        ns: Ns,
        /// Consumer group.
        #[arg(short = 'g', long = "groupName")]
        group: String,
    },
    /// The trace records of a message (QUERY_MESSAGE by key on the trace topic).
    #[command(name = "queryMsgTraceById")]
    QueryMsgTraceById {
        #[command(flatten)]
        ns: Ns,
        /// Message id.
        #[arg(short = 'i', long = "msgId")]
        msg_id: String,
        /// Trace topic.
        #[arg(short = 't', long = "traceTopic", default_value = "RMQ_SYS_TRACE_TOPIC")]
        trace_topic: String,
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
    let tls = match cli.tls.client() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mqadmin: TLS: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async {
        let mut config = ClientConfig { tls, ..Default::default() };
        match (cli.access_key, cli.secret_key) {
            (Some(ak), Some(sk)) => {
                let hook = rmqc::auth::signature::AclClientRpcHook(rmqc::auth::signature::Credentials::new(ak, sk));
                config.rpc_hook = Some(std::sync::Arc::new(hook));
            }
            (None, None) => {}
            _ => {
                eprintln!("mqadmin: give both -a (access key) and -s (secret key), before the command");
                return ExitCode::from(1);
            }
        }
        let client = RemotingClient::new(config);
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

fn target(t: &AuthTarget) -> auth::Target {
    auth::Target { broker_addr: t.broker_addr.clone(), cluster: t.cluster.clone() }
}

async fn run(client: &RemotingClient, cmd: Command) -> Result<String, AdminError> {
    match cmd {
        Command::CreateUser { t, username, password, user_type } => {
            let a = admin_with(client, &t.ns);
            auth::write_user(&a, &target(&t), true, &username, Some(&password), user_type.as_deref(), None).await
        }
        Command::UpdateUser { t, username, password, user_type, user_status } => {
            let a = admin_with(client, &t.ns);
            auth::write_user(
                &a,
                &target(&t),
                false,
                &username,
                password.as_deref(),
                user_type.as_deref(),
                user_status.as_deref(),
            )
            .await
        }
        Command::DeleteUser { t, username } => {
            auth::delete_user(&admin_with(client, &t.ns), &target(&t), &username).await
        }
        Command::GetUser { t, username } => auth::get_user(&admin_with(client, &t.ns), &target(&t), &username).await,
        Command::ListUser { t, filter } => {
            auth::list_users(&admin_with(client, &t.ns), &target(&t), filter.as_deref()).await
        }
        Command::CreateAcl { t, subject, resources, actions, source_ips, decision } => {
            let a = admin_with(client, &t.ns);
            auth::write_acl(&a, &target(&t), true, &subject, &resources, &actions, source_ips.as_deref(), &decision)
                .await
        }
        Command::UpdateAcl { t, subject, resources, actions, source_ips, decision } => {
            let a = admin_with(client, &t.ns);
            auth::write_acl(&a, &target(&t), false, &subject, &resources, &actions, source_ips.as_deref(), &decision)
                .await
        }
        Command::DeleteAcl { t, subject, resources } => {
            auth::delete_acl(&admin_with(client, &t.ns), &target(&t), &subject, resources.as_deref()).await
        }
        Command::CopyUser { ns, from, to, usernames } => {
            auth::copy_users(&admin_with(client, &ns), &from, &to, usernames.as_deref()).await
        }
        Command::CopyAcl { ns, from, to, subjects } => {
            auth::copy_acls(&admin_with(client, &ns), &from, &to, subjects.as_deref()).await
        }
        Command::GetAcl { t, subject } => auth::get_acl(&admin_with(client, &t.ns), &target(&t), &subject).await,
        Command::ListAcl { t, subject, resource } => {
            auth::list_acls(&admin_with(client, &t.ns), &target(&t), subject.as_deref(), resource.as_deref()).await
        }
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
        Command::SendMessage { ns, msg } => message::send_message(&admin_with(client, &ns), &msg.into_send(None)).await,
        Command::SendTransactionMessage { ns, msg, group, state } => match message::parse_tx_state(&state) {
            Ok(st) => {
                message::send_transaction_message(&admin_with(client, &ns), &msg.into_send(Some((group, st)))).await
            }
            Err(e) => Err(e),
        },
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
        Command::SetConsumeMode { ns, broker_addr, cluster, topic, group, mode, pop_share_queue_num } => {
            let admin = admin_with(client, &ns);
            pop::set_consume_mode(
                &admin,
                broker_addr.as_deref(),
                cluster.as_deref(),
                &topic,
                &group,
                &mode,
                pop_share_queue_num,
            )
            .await
        }
        Command::PopMessage { ns, broker_addr, topic, group, queue_id, count, invisible_time, poll_time, order } => {
            let admin = admin_with(client, &ns);
            pop::pop_message(&admin, &broker_addr, &topic, &group, queue_id, count, invisible_time, poll_time, order)
                .await
        }
        Command::AckMessage { ns, broker_addr, topic, group, queue_id, offset, extra_info } => {
            pop::ack_message(&admin_with(client, &ns), &broker_addr, &topic, &group, queue_id, offset, &extra_info)
                .await
        }
        Command::QueryMsgByKey { ns, topic, key, begin, end, max_num } => {
            message::query_msg_by_key(&admin_with(client, &ns), &topic, &key, begin, end, max_num).await
        }
        Command::ConsumerConnection { ns, group } => {
            client_admin::consumer_connection(&admin_with(client, &ns), &group).await
        }
        Command::ConsumerStatus { ns, group, client: id, jstack } => {
            client_admin::consumer_status(&admin_with(client, &ns), &group, id.as_deref(), jstack).await
        }
        Command::BrokerConsumeStats { ns, broker_addr, order } => {
            client_admin::broker_consume_stats(&admin_with(client, &ns), &broker_addr, order).await
        }
        Command::QueryCq { ns, topic, queue_id, index, count, broker_addr, group } => {
            let admin = admin_with(client, &ns);
            client_admin::query_cq(&admin, &topic, queue_id, index, count, group.as_deref(), broker_addr.as_deref())
                .await
        }
        Command::CleanExpiredCq { ns, broker_addr, cluster } => {
            let code = rmqc::protocol::codes::request::CLEAN_EXPIRED_CONSUMEQUEUE;
            client_admin::clean(&admin_with(client, &ns), code, broker_addr.as_deref(), cluster.as_deref()).await
        }
        Command::CleanUnusedTopic { ns, broker_addr, cluster } => {
            let code = rmqc::protocol::codes::request::CLEAN_UNUSED_TOPIC;
            client_admin::clean(&admin_with(client, &ns), code, broker_addr.as_deref(), cluster.as_deref()).await
        }
        Command::StatsAll { ns, topic, active } => {
            client_admin::stats_all(&admin_with(client, &ns), topic.as_deref(), active).await
        }
        Command::GetConsumerConfig { ns, group } => {
            client_admin::get_consumer_config(&admin_with(client, &ns), &group).await
        }
        Command::QueryMsgTraceById { ns, msg_id, trace_topic } => {
            client_admin::query_msg_trace_by_id(&admin_with(client, &ns), &msg_id, &trace_topic).await
        }
    }
}
