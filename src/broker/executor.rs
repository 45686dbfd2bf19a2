//! A hosted broker's own threads: a small tokio runtime that runs its ports' connections and
//! request processing (Apache gives each broker its own processor pools). A broker saturated by
//! its clients queues behind itself here; its neighbours' requests run on their own threads, which
//! the OS schedules fairly, and blocking disk work in one broker's request path stalls only it.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use super::priority::BrokerThreads;

/// How long a stopping broker's runtime waits for its threads.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Owns a broker's runtime; dropping it (even from async code) stops the runtime without waiting.
pub struct BrokerExecutor {
    rt: Option<Runtime>,
    handle: Handle,
    threads: usize,
}

impl BrokerExecutor {
    /// A runtime of `threads` workers (0 = one per core, at most 4) named after the broker; each
    /// of its threads (workers and blocking) registers in `members` while it lives.
    pub fn new(broker_name: &str, threads: usize, members: Arc<BrokerThreads>) -> std::io::Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4)
        } else {
            threads
        };
        let short: String = broker_name.chars().take(10).collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(16)
            .thread_name(format!("{short}-w"))
            .on_thread_start({
                let m = members.clone();
                move || m.register_current()
            })
            .on_thread_stop(move || members.unregister_current())
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        Ok(BrokerExecutor { rt: Some(rt), handle, threads })
    }

    /// The runtime's handle (to bind ports on).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Stops the runtime, waiting (off the async threads) up to a few seconds for its threads.
    pub async fn stop(mut self) {
        if let Some(rt) = self.rt.take() {
            let _ = tokio::task::spawn_blocking(move || rt.shutdown_timeout(STOP_TIMEOUT)).await;
        }
    }
}

impl Drop for BrokerExecutor {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
