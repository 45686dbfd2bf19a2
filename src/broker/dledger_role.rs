//! Role-driven registration of a DLedger broker (Apache's `DLedgerRoleChangeHandler`): the
//! broker follows its node's Raft role.
//!
//! - LEADER: once the store has dispatched every committed entry and the node has committed its
//!   whole log (a new leader commits the previous terms' tail with its first entry), the topic
//!   queue offsets are recomputed from the consume queues, the broker becomes `SYNC_MASTER` with
//!   brokerId 0 and registers at once. Until then it refuses sends as a slave does.
//! - FOLLOWER or CANDIDATE: `SLAVE` with brokerId = the number in `dLegerSelfId` + 1, registered
//!   at once (the NameServer forgets the address's previous id).
//!
//! Scheduling, timer, POP revive and transaction checks follow the role (they run on a master
//! only). Every status change also wakes the store's dispatcher (the committed index moved).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::config::BrokerRole;
use super::core::BrokerCore;
use crate::dledger::server::{registration_for, DLedgerServer, Registration};

/// How often a new leader re-checks whether its store caught up (it is also woken by commits).
const READY_POLL: Duration = Duration::from_millis(20);

fn set_role(core: &BrokerCore, role: BrokerRole, broker_id: i64) {
    let cur = core.config();
    if cur.broker_role == role && cur.broker_id == broker_id {
        return;
    }
    let mut next = (*cur).clone();
    next.broker_role = role;
    next.broker_id = broker_id;
    core.meta.config.store(Arc::new(next));
    info!(role = %role, broker_id, "DLedger role change: registering as {role} with brokerId {broker_id}");
    core.wake_registration.notify_one();
}

/// Follows `node`'s role until cancelled.
pub async fn run(core: Arc<BrokerCore>, node: Arc<DLedgerServer>, cancel: CancellationToken) {
    let mut status = node.watch();
    let self_id = node.self_id().to_string();
    let mut applied: Option<Registration> = None;
    loop {
        let st = status.borrow_and_update().clone();
        core.store().notify_committed();
        let mut waiting = false;
        match registration_for(st.role, &self_id) {
            Some(Registration::Master) if applied != Some(Registration::Master) => {
                let store = core.store();
                if st.committed >= st.end_index && store.replica_dispatched_index() >= st.committed {
                    store.recompute_queue_offsets();
                    set_role(&core, BrokerRole::SyncMaster, 0);
                    applied = Some(Registration::Master);
                } else {
                    waiting = true;
                }
            }
            Some(r @ Registration::Slave { broker_id }) if applied != Some(r) => {
                set_role(&core, BrokerRole::Slave, broker_id);
                applied = Some(r);
            }
            _ => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = status.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(READY_POLL), if waiting => {}
        }
    }
}
