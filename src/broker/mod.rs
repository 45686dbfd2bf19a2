//! A broker: processors, topic/offset/subscription managers, registration.
//!
//! A broker does not know whether it is hosted: it is handed a shared transport to bind its ports
//! on, an outbound client, the NameServer list and a tracing span ([`BrokerEnv`]), and it owns every
//! task it starts until [`Broker::shutdown`].

pub mod acting;
pub mod admin;
pub mod apache_config;
pub mod clients;
pub mod config;
pub mod core;
pub mod delay;
pub mod dledger_role;
pub mod executor;
pub mod meta;
pub mod pop;
pub mod priority;
pub mod processor;
pub mod pull;
pub mod query;
pub mod register;
pub mod schedule;
pub mod send;
pub mod slave_sync;
pub mod stats;
pub mod stats_window;
pub mod timer;
pub mod transaction;
pub mod waiters;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use self::core::{BrokerCore, StoreViewImpl};
use crate::config::Configurable;
use crate::ha;
use crate::protocol::codes::request;
use crate::remoting::{Admission, ProcessorTable, RemotingClient, RemotingServer, SubServer};
use crate::store::MessageStore;
use config::{BrokerIdentity, BrokerPlan};
use register::NamesrvList;

/// Errors that stop a broker from starting.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The store could not be opened or recovered.
    #[error("store of {identity}: {source}")]
    Store {
        /// The broker.
        identity: String,
        /// Why.
        source: crate::store::StoreError,
    },
    /// The store's opening task did not finish (it panicked or was cancelled).
    #[error("store of {identity}: opening did not finish: {source}")]
    StoreTask {
        /// The broker.
        identity: String,
        /// Why.
        source: tokio::task::JoinError,
    },
    /// Topic / offset / group files could not be loaded.
    #[error("metadata of {identity}: {source}")]
    Meta {
        /// The broker.
        identity: String,
        /// Why.
        source: meta::MetaError,
    },
    /// A port could not be bound.
    #[error("broker {identity}: {source}")]
    Bind {
        /// The broker.
        identity: String,
        /// Why.
        source: crate::remoting::RemotingError,
    },
    /// The HA port (`listenPort + 1`) could not be bound.
    #[error("broker {identity}: HA port {port}: {source}")]
    HaBind {
        /// The broker.
        identity: String,
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// The user and ACL store could not be opened or initialized.
    #[error("broker {identity}: access control: {source}")]
    Auth {
        /// The broker.
        identity: String,
        /// Why.
        source: crate::auth::AuthError,
    },
    /// A config value is unusable.
    #[error("broker {identity}: {reason}")]
    Config {
        /// The broker.
        identity: String,
        /// Why.
        reason: String,
    },
}

/// What a broker is handed by whoever runs it (a container, or a test).
#[derive(Clone)]
pub struct BrokerEnv {
    /// The shared transport the broker binds its ports on.
    pub server: RemotingServer,
    /// The outbound client (registration, replication).
    pub client: RemotingClient,
    /// The NameServers to register with.
    pub namesrvs: NamesrvList,
    /// The container's user and ACL store, for brokers with `useContainerAuthStore=true`.
    pub auth_store: Option<Arc<crate::auth::store::AuthStore>>,
    /// Where the hosted brokers tell each other whether they are saturated or active (adaptive
    /// priority demotes a saturated broker only while a neighbour has work).
    pub priority: Arc<priority::PriorityBoard>,
}

/// A running broker.
pub struct Broker {
    core: Arc<BrokerCore>,
    plan: BrokerPlan,
    ports: Vec<SubServer>,
    ha_listener: parking_lot::Mutex<Option<tokio::net::TcpListener>>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    schedule: Arc<schedule::ScheduleService>,
    timer: Option<Arc<timer::TimerService>>,
    env: BrokerEnv,
    span: tracing::Span,
    exec: executor::BrokerExecutor,
    threads: Arc<priority::BrokerThreads>,
    queues: Vec<Arc<Admission>>,
    pop: Arc<pop::PopService>,
    /// Cleanup and quota keys now (some change at runtime, UPDATE_BROKER_CONFIG).
    cleanup: Arc<arc_swap::ArcSwap<config::CleanupConfig>>,
    /// The DLedger node of a broker with `enableDLegerCommitLog=true`.
    dledger: Option<Arc<crate::dledger::server::DLedgerServer>>,
}

impl Broker {
    /// Opens the store (recovering it if needed), loads metadata, binds `listenPort` and
    /// `listenPort - 2`, starts the broker's tasks and registers with the NameServers at once.
    /// On error nothing is left behind: no port, no task, no open file.
    pub async fn start(plan: BrokerPlan, env: BrokerEnv) -> Result<Broker, BrokerError> {
        let identity = plan.config.identity();
        let span = tracing::info_span!("broker", broker = %identity);
        // A failed start removes the store directories it created (never one that was there).
        let mut created: Vec<std::path::PathBuf> =
            [plan.store.store_path_root_dir.clone(), plan.store.commit_log_dir()]
                .iter()
                .filter_map(|d| crate::util::first_missing_ancestor(d))
                .collect();
        created.dedup();
        let started = Self::start_in_span(plan, env, identity, span.clone()).instrument(span).await;
        if started.is_err() {
            crate::util::remove_created_dirs(&created);
        }
        started
    }

    async fn start_in_span(
        plan: BrokerPlan,
        env: BrokerEnv,
        identity: BrokerIdentity,
        span: tracing::Span,
    ) -> Result<Broker, BrokerError> {
        let cfg = plan.config.clone();
        let id = identity.to_string();
        let store_host: SocketAddr =
            format!("{}:{}", cfg.broker_ip1, cfg.listen_port).parse().map_err(|_| BrokerError::Config {
                identity: id.clone(),
                reason: format!("brokerIP1 '{}' is not an IP address", cfg.broker_ip1),
            })?;
        let store_cfg = plan.store.clone();
        let store_span = span.clone();
        // A DLedger broker's commitlog is its node's log: the node starts first (its port on the
        // shared transport), the store opens on it.
        let dledger =
            match cfg.dledger_config(&plan.store) {
                Some(dc) => {
                    // A plain commitlog already in the store stays readable below the DLedger data
                    // (Apache's `dividedCommitlogOffset`): at the first start it is recovered and
                    // sealed, and the node's first data file created after it, before the node runs.
                    let data_dir = crate::dledger::store::LogConfig::new(
                        &dc.store_root,
                        &dc.self_id,
                        dc.data_dir.clone(),
                        dc.data_file_size,
                    )
                    .data_dir;
                    let (sc, size, sp) = (store_cfg.clone(), dc.data_file_size, span.clone());
                    let prepared = tokio::task::spawn_blocking(move || {
                        sp.in_scope(|| MessageStore::prepare_divided(&sc, &data_dir, size))
                    })
                    .await;
                    match prepared {
                        Ok(Ok(_)) => {}
                        Ok(Err(source)) => return Err(BrokerError::Store { identity: id.clone(), source }),
                        Err(source) => return Err(BrokerError::StoreTask { identity: id.clone(), source }),
                    }
                    Some(crate::dledger::server::DLedgerServer::start(dc, &env.server, None).await.map_err(|e| {
                        BrokerError::Config { identity: id.clone(), reason: format!("DLedger node: {e}") }
                    })?)
                }
                None => None,
            };
        let stop_node = |node: Option<Arc<crate::dledger::server::DLedgerServer>>| async move {
            if let Some(n) = node {
                n.shutdown().await;
            }
        };
        let log = dledger.clone().map(|n| {
            Arc::new(crate::dledger::commitlog::DLedgerCommitLog::new(n))
                as Arc<dyn crate::store::replicated::ReplicatedLog>
        });
        let opened = tokio::task::spawn_blocking(move || {
            store_span.in_scope(|| match log {
                Some(log) => MessageStore::open_replicated(store_cfg, log),
                None => MessageStore::open(store_cfg),
            })
        })
        .await;
        let store = match opened {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                stop_node(dledger).await;
                return Err(BrokerError::Store { identity: id.clone(), source });
            }
            Err(source) => {
                stop_node(dledger).await;
                return Err(BrokerError::StoreTask { identity: id.clone(), source });
            }
        };
        let store = Arc::new(store);
        let node_on_fail = dledger.clone();
        let close_store = |store: Arc<MessageStore>| async move {
            let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
            stop_node(node_on_fail).await;
        };
        let mut meta_cfg = cfg.clone();
        if dledger.is_some() {
            // Apache: a DLedger broker starts with brokerId -1 and registers once its role is
            // known (dledger_role).
            meta_cfg.broker_role = config::BrokerRole::Slave;
            meta_cfg.broker_id = -1;
        }
        let meta = match meta::BrokerMeta::load(
            &plan.store.store_path_root_dir,
            meta_cfg,
            Arc::new(StoreViewImpl(store.clone())),
        ) {
            Ok(m) => m,
            Err(e) => {
                close_store(store).await;
                return Err(BrokerError::Meta { identity: id, source: e });
            }
        };
        let core = BrokerCore::new(identity.clone(), meta.clone(), store.clone(), store_host);
        if let Some(n) = &dledger {
            core.set_dledger(n.clone());
        }
        let guard = match open_auth(&plan, &env, &cfg.broker_cluster_name).await {
            Ok(g) => g,
            Err(source) => {
                store.set_arrival_listener(None);
                close_store(store).await;
                return Err(BrokerError::Auth { identity: id, source });
            }
        };
        if let Some(c) = &plan.auth.inner_credentials {
            core.set_inner_credentials(c.clone());
        }
        let schedule = Arc::new(schedule::ScheduleService::load(core.clone()));
        let timer = cfg.timer_wheel_enable.then(|| {
            Arc::new(timer::TimerService::new(
                store.clone(),
                if cfg.enable_slave_acting_master {
                    Arc::new(acting::EscapeSink(core.clone())) as Arc<dyn timer::TimerSink>
                } else {
                    Arc::new(timer::CoreSink(core.clone()))
                },
                timer::TimerSettings::from_config(&cfg),
            ))
        });
        let mut fixed = plan.store.entries();
        fixed.extend(plan.cleanup.entries());
        fixed.extend(plan.auth_config.entries());
        let pop = pop::PopService::new(core.clone(), &plan.store.store_path_root_dir);
        let cleanup = Arc::new(arc_swap::ArcSwap::from_pointee(plan.cleanup.clone()));
        let (table, queues) = processor_table(&core, &schedule, &pop, &plan, fixed, &guard, &cleanup);
        let listener: Arc<dyn crate::remoting::ChannelEventListener> = meta.clone();
        let threads = priority::BrokerThreads::new();
        threads.register(&store.thread_ids());
        let exec = match executor::BrokerExecutor::new(&cfg.broker_name, cfg.broker_worker_threads, threads.clone()) {
            Ok(e) => e,
            Err(e) => {
                store.set_arrival_listener(None);
                close_store(store).await;
                return Err(BrokerError::Config { identity: id, reason: format!("cannot start its threads: {e}") });
            }
        };
        let mut ports = Vec::new();
        for port in [cfg.listen_port, cfg.listen_port - 2] {
            match env.server.bind_on(port, table.clone(), Some(listener.clone()), Some(exec.handle().clone())).await {
                Ok(p) => ports.push(p),
                Err(source) => {
                    for p in ports {
                        p.close().await;
                    }
                    store.set_arrival_listener(None);
                    close_store(store).await;
                    return Err(BrokerError::Bind { identity: id, source });
                }
            }
        }
        let ha_addr = SocketAddr::new(env.server.config().bind_address, cfg.ha_listen_port);
        // Classic HA is not started in DLedger mode (the Raft group replicates).
        let ha_listener = match dledger.is_some() {
            true => None,
            false => match tokio::net::TcpListener::bind(ha_addr).await {
                Ok(l) => Some(l),
                Err(source) => {
                    for p in ports {
                        p.close().await;
                    }
                    store.set_arrival_listener(None);
                    close_store(store).await;
                    return Err(BrokerError::HaBind { identity: id, port: cfg.ha_listen_port, source });
                }
            },
        };
        let broker = Broker {
            core: core.clone(),
            plan,
            ports,
            ha_listener: parking_lot::Mutex::new(ha_listener),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            schedule: schedule.clone(),
            timer,
            env,
            span,
            exec,
            threads,
            queues,
            pop,
            cleanup,
            dledger,
        };
        if cfg.enable_slave_acting_master && cfg.broker_role != config::BrokerRole::Slave {
            // A returning master takes the acting slave's progress before delivering anything.
            core.acting.set_holding(true);
        }
        broker.start_tasks();
        let list = broker.env.namesrvs.load_full();
        // A DLedger broker registers once its role is known (brokerId -1 until then).
        let registered = if core.config().broker_id >= 0 {
            register::register_all(&core, &broker.env.client, &list).await
        } else {
            Vec::new()
        };
        core.ha.slave.on_register(registered.iter().map(|r| (r.master_addr.as_deref(), r.ha_server_addr.as_deref())));
        let p = &broker.plan;
        for n in &p.notes {
            warn!("{n}");
        }
        info!(
            "Broker [{}-{}] boot success. serializeType=JSON {} at {} (fast port {}, HA port {}), store {}, config {}, \
             registered with {}/{} NameServer(s)",
            cfg.broker_name,
            cfg.broker_id,
            match &broker.dledger {
                Some(n) => format!("DLedger member {} of group {} (no HA port)", n.self_id(), n.config().group),
                None => cfg.broker_role.to_string(),
            },
            cfg.broker_addr(),
            cfg.listen_port - 2,
            cfg.ha_listen_port,
            p.store.store_path_root_dir.display(),
            p.path.display(),
            registered.len(),
            list.len(),
        );
        Ok(broker)
    }

    fn start_tasks(&self) {
        let core = self.core.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(
            register::registration_loop(
                core.clone(),
                self.env.client.clone(),
                self.env.namesrvs.clone(),
                // Subscribed here, before the first registration: a topic created meanwhile is
                // registered again at once rather than at the next period.
                core.meta.topics.subscribe_changes(),
                cancel.clone(),
            )
            .instrument(self.span.clone()),
        );
        core.acting.install_bridge(acting::EscapeBridge::new(self.env.client.clone(), self.env.namesrvs.clone()));
        if core.config().enable_slave_acting_master {
            let (client, ns) = (self.env.client.clone(), self.env.namesrvs.clone());
            self.tasks.spawn(
                acting::heartbeat_loop(core.clone(), client.clone(), ns.clone(), cancel.clone())
                    .instrument(self.span.clone()),
            );
            self.tasks.spawn(
                acting::member_group_loop(core.clone(), client.clone(), ns.clone(), cancel.clone())
                    .instrument(self.span.clone()),
            );
            if core.acting.is_holding() {
                self.tasks.spawn(
                    acting::hand_back(core.clone(), self.schedule.clone(), client, ns, cancel.clone())
                        .instrument(self.span.clone()),
                );
            }
        }
        self.tasks.spawn(self.schedule.clone().run(cancel.clone()).instrument(self.span.clone()));
        if let Some(timer) = &self.timer {
            // The master delivers timer messages; a slave gets the result by replication. In
            // acting-master mode a slave keeps its own timer files and delivers while acting.
            core.acting.install_timer(timer);
            let c = core.clone();
            let enqueue: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(move || {
                let cfg = c.config();
                cfg.broker_role != config::BrokerRole::Slave || cfg.enable_slave_acting_master
            });
            let c = core.clone();
            let dequeue: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(move || acting::special_services_active(&c));
            self.tasks.spawn(timer.clone().run_gated(cancel.clone(), enqueue, dequeue).instrument(self.span.clone()));
        }
        self.tasks.spawn(pop::revive::run(self.pop.clone(), cancel.clone()).instrument(self.span.clone()));
        let governor = priority::PriorityGovernor::new(
            self.env.priority.clone(),
            self.threads.clone(),
            {
                let store = core.store().clone();
                Box::new(move || store.thread_ids())
            },
            self.queues.clone(),
            self.exec.threads(),
            priority::PrioritySettings::from_config(&core.config()),
        );
        self.tasks.spawn(governor.run(cancel.clone()).instrument(self.span.clone()));
        self.tasks.spawn(stats_window::sampling_loop(core.clone(), cancel.clone()).instrument(self.span.clone()));
        self.tasks
            .spawn(cleanup_loop(core.clone(), self.cleanup.clone(), cancel.clone()).instrument(self.span.clone()));
        let tx_host = transaction::BrokerTxHost::new(core.clone(), self.plan.cleanup.file_reserved_time);
        let tx_check = Arc::new(transaction::check::TransactionCheckService::new(Arc::new(tx_host)));
        self.tasks.spawn(tx_check.run(self.exec.handle().clone(), cancel.clone()).instrument(self.span.clone()));
        // Replication: every broker serves its HA port (a master feeds its slaves there); a slave
        // also replicates from its master and copies its metadata.
        if let Some(listener) = self.ha_listener.lock().take() {
            self.tasks.spawn(
                ha::serve_ha_port(
                    core.clone(),
                    listener,
                    self.env.server.config().tls.clone(),
                    self.tasks.clone(),
                    cancel.clone(),
                    self.span.clone(),
                )
                .instrument(self.span.clone()),
            );
        }
        // A slave copies its master's metadata; a DLedger follower does so as a slave does (while it is one).
        let copies_metadata = if let Some(node) = &self.dledger {
            self.tasks
                .spawn(dledger_role::run(core.clone(), node.clone(), cancel.clone()).instrument(self.span.clone()));
            true
        } else if core.config().broker_role == config::BrokerRole::Slave {
            let tls = self.env.client.config().tls.clone();
            self.tasks.spawn(ha::run_ha_client(core.clone(), tls, cancel.clone()).instrument(self.span.clone()));
            true
        } else {
            false
        };
        if copies_metadata {
            self.tasks.spawn(
                slave_sync::run_slave_sync(
                    core.clone(),
                    self.schedule.clone(),
                    self.env.client.clone(),
                    cancel.clone(),
                )
                .instrument(self.span.clone()),
            );
        }
        // Persist offsets every 5 s (flushConsumerOffsetInterval) and drop silent clients.
        let (c2, k2) = (core.clone(), cancel.clone());
        self.tasks.spawn(
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = k2.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    c2.meta.scan_expired_clients(crate::util::now_millis());
                    let meta = c2.meta.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Err(e) = meta.persist_all() {
                            warn!(error = %e, "persisting metadata failed");
                        }
                    })
                    .await;
                }
            }
            .instrument(self.span.clone()),
        );
    }

    /// The broker's own threads and their scheduling class (adaptive priority).
    pub fn threads(&self) -> &Arc<priority::BrokerThreads> {
        &self.threads
    }

    /// The broker's identity.
    pub fn identity(&self) -> &BrokerIdentity {
        self.core.identity()
    }

    /// The shared core (for tests and the container's status commands).
    pub fn core(&self) -> &Arc<BrokerCore> {
        &self.core
    }

    /// The DLedger node (`enableDLegerCommitLog=true` only).
    pub fn dledger(&self) -> Option<&Arc<crate::dledger::server::DLedgerServer>> {
        self.dledger.as_ref()
    }

    /// The timer message service (`None` with `timerWheelEnable=false`).
    pub fn timer(&self) -> Option<&Arc<timer::TimerService>> {
        self.timer.as_ref()
    }

    /// The plan it was started from.
    pub fn plan(&self) -> &BrokerPlan {
        &self.plan
    }

    /// What the broker reports to a metrics scrape.
    pub fn metrics_sample(&self) -> crate::metrics::BrokerSample {
        use crate::store::cleanup::{assess, StatvfsProbe};
        let core = &self.core;
        let cfg = core.config();
        let store = core.store();
        let topics = core.meta.topics.topic_names();
        core.stats.topics.retain(|t| topics.iter().any(|x| x == t));
        let mut lag = Vec::new();
        for (key, queues) in core.meta.offsets.offset_table() {
            let Some((topic, group)) = key.split_once('@') else { continue };
            let behind: i64 = queues.iter().map(|(q, off)| (store.max_offset_in_queue(topic, *q) - off).max(0)).sum();
            lag.push((group.to_string(), topic.to_string(), behind));
        }
        let commits = core.meta.offsets.offset_table();
        let mut inflight = Vec::new();
        let mut ready = Vec::new();
        for (key, queues) in core.meta.offsets.pull_offset_table() {
            let Some((topic, group)) = key.split_once('@') else { continue };
            let committed = commits.get(&key);
            let mut pulled_not_committed = 0;
            let mut not_pulled = 0;
            for (q, pulled) in &queues {
                if let Some(c) = committed.and_then(|m| m.get(q)) {
                    pulled_not_committed += (pulled - c).max(0);
                }
                not_pulled += (store.max_offset_in_queue(topic, *q) - pulled).max(0);
            }
            inflight.push((group.to_string(), topic.to_string(), pulled_not_committed));
            ready.push((group.to_string(), topic.to_string(), not_pulled));
        }
        inflight.sort();
        ready.sort();
        let producer_connections = core
            .meta
            .producers
            .connection_counts()
            .into_iter()
            .map(|(l, v, n)| {
                (l.name().to_ascii_lowercase(), crate::protocol::body::version_desc(v).to_ascii_lowercase(), n as i64)
            })
            .collect();
        let consumer_connections = core
            .meta
            .consumers
            .connection_counts()
            .into_iter()
            .map(|(g, l, v, t, n)| {
                let mode = match t.as_str() {
                    "CONSUME_ACTIVELY" => "pull",
                    "CONSUME_POP" => "pop",
                    _ => "push",
                };
                (
                    g,
                    l.name().to_ascii_lowercase(),
                    crate::protocol::body::version_desc(v).to_ascii_lowercase(),
                    mode.to_string(),
                    n as i64,
                )
            })
            .collect();
        let a = assess(&self.cleanup.load().policy().0, &store.sample_disk_usage(&StatvfsProbe));
        let ha: std::collections::HashMap<String, String> = core
            .ha
            .runtime_info(store.commit_log_max_offset(), cfg.broker_role == config::BrokerRole::Slave)
            .into_iter()
            .collect();
        let replication_lag_bytes =
            ha.get("haReplicationLagBytes").or_else(|| ha.get("haLagBytes")).and_then(|v| v.parse::<i64>().ok());
        let max = store.commit_log_max_offset();
        crate::metrics::BrokerSample {
            cluster: cfg.broker_cluster_name.clone(),
            name: cfg.broker_name.clone(),
            id: cfg.broker_id,
            role: cfg.broker_role.to_string(),
            permission: cfg.broker_permission as i64,
            topics: topics.len() as i64,
            groups: core.meta.subscriptions.all().len() as i64,
            storage_bytes: store.logical_disk_usage(),
            flush_behind_bytes: (max - store.commit_log_flushed_offset()).max(0),
            dispatch_behind_bytes: (max - store.dispatched_offset()).max(0),
            quota_bytes: a.quota_bytes,
            quota_ratio: a.logical_ratio,
            disk_ratio: a.commit_log_ratio,
            replication_lag_bytes,
            messages_in: core.stats.topics.stored_snapshot(),
            messages_out: core.stats.topics.delivered_snapshot(),
            consumer_lag: lag,
            consumer_inflight: inflight,
            consumer_ready: ready,
            producer_connections,
            consumer_connections,
            dledger: self.dledger.as_ref().map(|n| {
                let st = n.status();
                (format!("{:?}", st.role).to_ascii_lowercase(), st.term)
            }),
            queues: self.queues.iter().map(|q| (q.name().to_string(), q.len() as u64, q.refused())).collect(),
            rpc_latency: core
                .stats
                .rpc
                .snapshot()
                .into_iter()
                .map(|((req, resp), (sum, count, buckets))| {
                    let req = crate::protocol::codes::request_name(req)
                        .map(str::to_string)
                        .unwrap_or_else(|| req.to_string());
                    let resp = crate::protocol::codes::response_name(resp).to_ascii_lowercase();
                    (req, resp, sum, count, buckets)
                })
                .collect(),
        }
    }

    /// The ports it serves.
    pub fn ports(&self) -> Vec<u16> {
        self.ports.iter().map(SubServer::port).collect()
    }

    /// Graceful stop: refuse writes, unregister, let in-flight requests finish, stop every task,
    /// persist metadata, flush and close the store, close the ports.
    pub async fn shutdown(self) {
        let span = self.span.clone();
        self.shutdown_in_span().instrument(span).await
    }

    async fn shutdown_in_span(self) {
        let id = self.identity().to_string();
        info!("broker {id} shutting down");
        self.core.begin_shutdown();
        let list = self.env.namesrvs.load_full();
        register::unregister_all(&self.core, &self.env.client, &list).await;
        for p in self.ports {
            p.close().await;
        }
        self.exec.stop().await;
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.core.meta.shutdown().await;
        let core = self.core.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = core.meta.persist_all() {
                warn!(error = %e, "persisting metadata at shutdown failed");
            }
            core.store().set_arrival_listener(None);
            if let Err(e) = core.store().shutdown() {
                warn!(error = %e, "store shutdown reported an error");
            }
        })
        .await;
        if let Some(node) = self.dledger {
            node.shutdown().await;
        }
        info!("broker {id} shut down");
    }
}

/// Runs the store's cleanup every `cleanResourceInterval` (the first run at once, so a full disk
/// is flagged before the first write) until cancelled, each run with the policy of the keys as
/// they are then (an operator may change some at runtime). Each run is awaited: nothing is left
/// running when the task ends.
async fn cleanup_loop(
    core: Arc<BrokerCore>,
    live: Arc<arc_swap::ArcSwap<config::CleanupConfig>>,
    cancel: CancellationToken,
) {
    let cfg = live.load_full();
    let (policy, notes) = cfg.policy();
    for n in notes {
        warn!("{n}");
    }
    tracing::debug!(
        share = policy.disk_share,
        interval_ms = cfg.interval().as_millis() as u64,
        warning_level = policy.warning_ratio,
        clean_forcibly_ratio = policy.clean_forcibly_ratio,
        "disk cleanup service started"
    );
    let mut tick = tokio::time::interval(cfg.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let policy = live.load().policy().0;
        let (store, span) = (core.store().clone(), tracing::Span::current());
        let run = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                store.run_cleanup(
                    &policy,
                    &crate::store::cleanup::StatvfsProbe,
                    crate::store::cleanup::CleanupClock::now(),
                )
            })
        })
        .await;
        match run {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "cleanup run failed"),
            Err(e) => warn!(error = %e, "cleanup run panicked"),
        }
    }
}

/// Opens the broker's user and ACL store (or takes the container's), creates the initial and
/// inner users if absent, imports `plain_acl.yml` when asked. Blocking file work runs on the
/// blocking pool.
async fn open_auth(
    plan: &BrokerPlan,
    env: &BrokerEnv,
    cluster: &str,
) -> Result<Arc<crate::auth::AuthGuard>, crate::auth::AuthError> {
    use crate::auth::model::{User, UserStatus, UserType};
    use crate::auth::store::AuthStore;
    let settings = plan.auth.clone();
    let shared = if settings.use_container_store {
        match env.auth_store.clone() {
            Some(s) => Some(s),
            None => {
                return Err(crate::auth::AuthError::Invalid(
                    "useContainerAuthStore=true, but the container keeps no user store (set authenticationEnabled \
                     or authConfigPath in the container config)"
                        .into(),
                ))
            }
        }
    } else {
        None
    };
    let s2 = settings.clone();
    let store = tokio::task::spawn_blocking(move || -> Result<Arc<AuthStore>, crate::auth::AuthError> {
        let store = match shared {
            Some(s) => s,
            None => Arc::new(AuthStore::open(&s2.dir)?),
        };
        if let Some(u) = &s2.init_user {
            if store.create_user_if_absent(u.clone())? {
                info!(username = %u.username, "initial Super user created");
            }
        }
        if let Some(c) = &s2.inner_credentials {
            let u = User {
                username: c.access_key.clone(),
                password: c.secret_key.clone(),
                user_type: UserType::Super,
                user_status: UserStatus::Enable,
            };
            if store.create_user_if_absent(u)? {
                info!(username = %c.access_key, "inner client user created");
            }
        }
        if s2.migrate_v1 {
            let done = crate::auth::migrate::import(&store, &s2.plain_acl_file)?;
            info!(imported = ?done.users, skipped = ?done.skipped, "ACL 1.0 users imported");
        }
        Ok(store)
    })
    .await
    .map_err(|e| crate::auth::AuthError::Other(format!("opening the user store did not finish: {e}")))??;
    if settings.authentication || settings.authorization {
        info!(
            authentication = settings.authentication,
            authorization = settings.authorization,
            store = %store.dir().display(),
            "access control on"
        );
    }
    Ok(Arc::new(crate::auth::AuthGuard::new(settings, store, cluster)))
}

/// A processor behind the access-control checks (when on), whose answers are timed into the
/// broker's `rocketmq_rpc_latency`.
fn guarded<P: crate::remoting::RequestProcessor>(
    core: &Arc<BrokerCore>,
    guard: &Arc<crate::auth::AuthGuard>,
    p: P,
) -> Arc<dyn crate::remoting::RequestProcessor> {
    if guard.enabled() {
        let inner = crate::auth::Guarded { inner: p, guard: guard.clone() };
        Arc::new(stats::Timed { inner, latency: core.stats.rpc.clone() })
    } else {
        Arc::new(stats::Timed { inner: p, latency: core.stats.rpc.clone() })
    }
}

fn processor_table(
    core: &Arc<BrokerCore>,
    schedule: &Arc<schedule::ScheduleService>,
    pop: &Arc<pop::PopService>,
    plan: &BrokerPlan,
    fixed: Vec<(&'static str, String)>,
    guard: &Arc<crate::auth::AuthGuard>,
    cleanup: &Arc<arc_swap::ArcSwap<config::CleanupConfig>>,
) -> (ProcessorTable, Vec<Arc<Admission>>) {
    let mut t = ProcessorTable::new();
    let c = &plan.config;
    let ms = Duration::from_millis;
    let send = guarded(core, guard, send::SendProcessor::new(core.clone()));
    let send_queue = Admission::new("send", c.send_thread_pool_queue_capacity, ms(c.wait_time_mills_in_send_queue));
    t.register_bounded(
        &[
            request::SEND_MESSAGE,
            request::SEND_MESSAGE_V2,
            request::SEND_BATCH_MESSAGE,
            request::CONSUMER_SEND_MSG_BACK,
        ],
        send,
        Some(send_queue.clone()),
    );
    let pull = guarded(core, guard, pull::PullProcessor::new(core.clone()));
    let pull_queue = Admission::new("pull", c.pull_thread_pool_queue_capacity, ms(c.wait_time_mills_in_pull_queue));
    t.register_bounded(&[request::PULL_MESSAGE, request::LITE_PULL_MESSAGE], pull, Some(pull_queue.clone()));
    let pop_p = guarded(core, guard, pop::processor::PopProcessor::new(pop.clone()));
    t.register_bounded(pop::processor::POP_POLL_CODES, pop_p.clone(), Some(pull_queue.clone()));
    t.register_all(pop::processor::POP_CODES, pop_p);
    let query_queue = Admission::new("query", c.query_thread_pool_queue_capacity, Duration::ZERO);
    t.register_bounded(
        query::QUERY_CODES,
        guarded(core, guard, query::QueryProcessor::new(core.clone())),
        Some(query_queue.clone()),
    );
    let tx = guarded(core, guard, transaction::end::EndTransactionProcessor::new(core.clone()));
    let tx_queue = Admission::new(
        "endTransaction",
        c.end_transaction_pool_queue_capacity,
        ms(c.wait_time_mills_in_transaction_queue),
    );
    t.register_bounded(&[request::END_TRANSACTION], tx, Some(tx_queue.clone()));
    t.register_all(
        processor::MetaProcessor::CODES,
        guarded(core, guard, processor::MetaProcessor::new(core.meta.clone())),
    );
    t.register_all(
        processor::client_admin::ClientAdminProcessor::CODES,
        guarded(core, guard, processor::client_admin::ClientAdminProcessor::new(core.clone())),
    );
    t.register_all(
        &[request::SEND_REPLY_MESSAGE, request::SEND_REPLY_MESSAGE_V2],
        guarded(core, guard, processor::reply::ReplyProcessor::new(core.clone())),
    );
    t.register_all(
        processor::consumer_admin::ConsumerAdminProcessor::CODES,
        guarded(core, guard, processor::consumer_admin::ConsumerAdminProcessor::new(core.clone())),
    );
    let admin = admin::BrokerAdminProcessor::new(
        core.clone(),
        schedule.clone(),
        plan.persist_path.clone(),
        fixed,
        cleanup.clone(),
        vec![
            (send_queue.clone(), c.send_thread_pool_queue_capacity),
            (pull_queue.clone(), c.pull_thread_pool_queue_capacity),
            (query_queue.clone(), c.query_thread_pool_queue_capacity),
            (tx_queue.clone(), c.end_transaction_pool_queue_capacity),
        ],
    );
    t.register_all(admin::ADMIN_CODES, guarded(core, guard, admin));
    t.register_all(
        crate::auth::admin::AUTH_ADMIN_CODES,
        guarded(core, guard, crate::auth::admin::AuthAdminProcessor::new(guard.clone())),
    );
    (t, vec![send_queue, pull_queue, query_queue, tx_queue])
}
