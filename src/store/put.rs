//! The put path: checks, the append under the put lock (reserving consume-queue and index space
//! first), the SYNC_FLUSH wait, and raw appends of replicated data.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

use super::error::{Result, StoreError};
use super::failure_log::FailureNote;
use super::message::{self, sysflag, MessageInner, MessageVersion};
use super::replicated::{patch_physical_offsets, BodyHook, ReplicaAppendError, ReplicatedLog};
use super::{index, AppendMessageResult, FlushDiskType, MessageStore, PutMessageStatus, Shared};

/// Result of a put: status plus what was appended (if anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutMessageResult {
    /// Status.
    pub status: PutMessageStatus,
    /// Append details when the message was written.
    pub append: Option<AppendMessageResult>,
}

impl PutMessageResult {
    fn status(status: PutMessageStatus) -> Self {
        PutMessageResult { status, append: None }
    }
    /// The message is stored (PUT_OK or a "sent but" status).
    pub fn is_ok(&self) -> bool {
        self.status.is_stored() && self.append.is_some()
    }
}

impl MessageStore {
    fn precheck(&self, msgs: &[MessageInner]) -> std::result::Result<(), PutMessageStatus> {
        if !self.is_writeable() {
            return Err(PutMessageStatus::ServiceNotAvailable);
        }
        let Some(first) = msgs.first() else {
            return Err(PutMessageStatus::MessageIllegal);
        };
        for m in msgs {
            if m.topic.is_empty()
                || m.topic.len() > 255
                || m.topic != first.topic
                || m.queue_id != first.queue_id
                || m.queue_id < 0
            {
                return Err(PutMessageStatus::MessageIllegal);
            }
            if m.body.len() > self.max_message_size() {
                return Err(PutMessageStatus::MessageIllegal);
            }
            if m.properties.len() > message::MAX_PROPERTIES_LEN {
                return Err(PutMessageStatus::PropertiesSizeExceeded);
            }
        }
        Ok(())
    }

    /// Appends one message; with SYNC_FLUSH completes after its bytes are flushed (unless the
    /// message has `WAIT=false`), answering FLUSH_DISK_TIMEOUT after `syncFlushTimeout`.
    pub async fn put_message(&self, msg: MessageInner) -> PutMessageResult {
        self.put_messages(std::slice::from_ref(&msg)).await
    }

    /// Appends a batch of messages of one topic-queue as consecutive records in one file, with
    /// consecutive queue offsets.
    pub async fn put_messages(&self, msgs: &[MessageInner]) -> PutMessageResult {
        let r = self.put_messages_uncounted(msgs).await;
        if r.status != PutMessageStatus::PutOk {
            self.shared.put_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    /// Puts that did not end PUT_OK so far (refused by the store, or not flushed in time):
    /// Apache's `putMessageFailedTimes`.
    pub fn put_failed_times(&self) -> u64 {
        self.shared.put_failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn put_messages_uncounted(&self, msgs: &[MessageInner]) -> PutMessageResult {
        if let Some(log) = self.shared.replica.clone() {
            return self.put_replicated(log.as_ref(), msgs).await;
        }
        let (res, wait) = match self.append_now(msgs) {
            Ok(x) => x,
            Err(s) => return PutMessageResult::status(s),
        };
        let Some(rx) = wait else {
            return PutMessageResult { status: PutMessageStatus::PutOk, append: Some(res) };
        };
        let timeout = Duration::from_millis(self.shared.live.read().sync_flush_timeout);
        let status = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(true)) => PutMessageStatus::PutOk,
            Ok(Ok(false)) | Ok(Err(_)) => PutMessageStatus::UnknownError,
            Err(_) => PutMessageStatus::FlushDiskTimeout,
        };
        if status != PutMessageStatus::PutOk {
            tracing::warn!(status = status.name(), offset = res.wrote_offset, "sync flush did not complete");
        }
        PutMessageResult { status, append: Some(res) }
    }

    /// The put of a store on a replicated log: one entry per record (a batch: consecutive
    /// entries), acknowledged once the log committed every one (Apache's `DLedgerCommitLog`
    /// statuses: not the leader or leadership lost ⇒ SERVICE_NOT_AVAILABLE, no majority in time ⇒
    /// OS_PAGE_CACHE_BUSY).
    async fn put_replicated(&self, log: &dyn ReplicatedLog, msgs: &[MessageInner]) -> PutMessageResult {
        if let Err(s) = self.precheck(msgs) {
            return PutMessageResult::status(s);
        }
        let s = &self.shared;
        let version = MessageVersion::for_topic(&msgs[0].topic, s.config.auto_message_version_on_topic_len);
        let crcs: Vec<i32> = msgs.iter().map(|m| message::body_crc(&m.body)).collect();
        let submitted = s.commitlog.append_replicated(msgs, &crcs, version, |rec| {
            let hook: BodyHook = Box::new(move |pos, b| patch_physical_offsets(pos, b, &[0]));
            log.submit(rec, hook).map_err(|e| {
                tracing::debug!(error = ?e, "replicated log refused an append");
                PutMessageStatus::ServiceNotAvailable
            })
        });
        let (waits, refused, first_qo, lens, store_ts) = match submitted {
            Ok(x) => x,
            Err(st) => return PutMessageResult::status(st),
        };
        let mut positions = Vec::with_capacity(waits.len());
        let mut failed = refused;
        for w in waits {
            match w.await {
                Ok(p) => positions.push(p),
                Err(e) => {
                    let status = match e {
                        ReplicaAppendError::Timeout => PutMessageStatus::OsPageCacheBusy,
                        _ => PutMessageStatus::ServiceNotAvailable,
                    };
                    tracing::warn!(error = ?e, status = status.name(), "replicated append not acknowledged");
                    failed.get_or_insert(status);
                }
            }
        }
        s.wake_dispatcher();
        if let Some(status) = failed {
            return PutMessageResult::status(status);
        }
        let mut ids = String::new();
        for (m, pos) in msgs.iter().zip(&positions) {
            if !ids.is_empty() {
                ids.push(',');
            }
            crate::protocol::message::push_offset_msg_id(&mut ids, &m.store_host, *pos);
        }
        PutMessageResult {
            status: PutMessageStatus::PutOk,
            append: Some(AppendMessageResult {
                wrote_offset: positions.first().copied().unwrap_or(-1),
                wrote_bytes: lens.iter().sum(),
                msg_id: ids,
                logics_offset: first_qo,
                store_timestamp: store_ts,
                msg_num: msgs.len(),
            }),
        }
    }

    #[allow(clippy::type_complexity)]
    fn append_now(
        &self,
        msgs: &[MessageInner],
    ) -> std::result::Result<(AppendMessageResult, Option<oneshot::Receiver<bool>>), PutMessageStatus> {
        self.precheck(msgs)?;
        let s = &self.shared;
        let version = MessageVersion::for_topic(&msgs[0].topic, s.config.auto_message_version_on_topic_len);
        let crcs: Vec<i32> = msgs.iter().map(|m| message::body_crc(&m.body)).collect();
        let index_keys: u64 = if s.config.message_index_enable {
            msgs.iter()
                .filter(|m| sysflag::transaction_value(m.sys_flag) != sysflag::TRANSACTION_ROLLBACK)
                .map(|m| {
                    let [uniq, keys] =
                        message::find_properties(&m.properties, [message::property::UNIQ_KEY, message::property::KEYS]);
                    index::key_count(uniq, keys)
                })
                .sum()
        } else {
            0
        };
        let (topic, queue_id) = (msgs[0].topic.as_str(), msgs[0].queue_id);
        let res = s.commitlog.append(msgs, &crcs, version, |first_qo, entries| {
            s.reserve_logics(topic, queue_id, first_qo, entries, index_keys)
        })?;
        self.shared.wake_dispatcher();
        self.shared.appended_tx.send_replace(res.end_offset());
        let wait = self.shared.config.flush_disk_type == FlushDiskType::SyncFlush
            && message::find_property(&msgs[0].properties, message::property::WAIT) != Some("false");
        if !wait {
            return Ok((res, None));
        }
        let (tx, rx) = oneshot::channel();
        self.shared.flush_reqs.lock().push((res.end_offset() as u64, tx));
        self.shared.flush_cv.notify_one();
        Ok((res, Some(rx)))
    }

    /// Makes an empty store's commitlog (and dispatch) start at `offset`: a fresh slave replicates
    /// from the start of its master's last file. Refused once the commitlog holds a file.
    pub fn start_replica_at(&self, offset: i64) -> Result<()> {
        if self.is_replicated() {
            return Err(StoreError::InvalidArgument("the commitlog lives in a replicated log".into()));
        }
        self.shared.commitlog.start_empty_at(offset)?;
        self.shared.reput_from.store(offset, Ordering::Release);
        Ok(())
    }

    /// Appends raw commitlog bytes (replication) at exactly [`Self::commit_log_max_offset`].
    /// Consume queues and index follow through the dispatcher.
    pub fn append_raw(&self, start_offset: i64, data: &[u8]) -> Result<()> {
        if self.is_replicated() {
            return Err(StoreError::InvalidArgument("the commitlog lives in a replicated log".into()));
        }
        if self.is_shutdown() {
            return Err(StoreError::ShutDown);
        }
        if self.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        self.shared.commitlog.append_raw(start_offset, data)?;
        self.shared.wake_dispatcher();
        self.shared.appended_tx.send_replace(self.shared.commitlog.max_offset());
        Ok(())
    }
}

impl Shared {
    /// Runs under the put lock before a put is written: makes sure the consume-queue entries
    /// `[first_qo, first_qo + entries)` of `topic`/`queue_id` and `index_keys` index entries have
    /// their files (allocating them now if needed), so that an acknowledged message can always be
    /// dispatched. Refuses the put with CREATE_MAPPED_FILE_FAILED (as a commitlog file that cannot
    /// be created) otherwise; logged once, then at most once a minute, and when puts pass again.
    pub(super) fn reserve_logics(
        &self,
        topic: &str,
        queue_id: i32,
        first_qo: i64,
        entries: usize,
        index_keys: u64,
    ) -> std::result::Result<(), PutMessageStatus> {
        let res = (|| -> Result<bool> {
            let mut allocated = false;
            if entries > 0 {
                allocated = self.cqs.get_or_create(topic, queue_id)?.reserve(first_qo, entries)?;
            }
            Ok(self.index.reserve(index_keys)? || allocated)
        })();
        match res {
            Ok(allocated) => {
                // Only an allocation ends a refusal episode: puts that need no new file pass
                // while others are refused.
                if let Some(r) = allocated.then(|| self.reserve_log.succeeded()).flatten() {
                    tracing::info!(
                        refused_puts = r.failures,
                        after_ms = r.lasted.as_millis() as u64,
                        "consume queue and index space available again: puts accepted"
                    );
                }
                Ok(())
            }
            Err(e) => {
                match self.reserve_log.failed() {
                    FailureNote::First => tracing::error!(
                        error = %e,
                        topic,
                        queue_id,
                        "cannot allocate consume queue or index space for a put: puts that need it are refused \
                         (CREATE_MAPPED_FILE_FAILED) until space is available (logged again at most once a minute)"
                    ),
                    FailureNote::Still { failures, since } => tracing::error!(
                        error = %e,
                        topic,
                        queue_id,
                        refused_puts = failures,
                        since_s = since.as_secs(),
                        "still cannot allocate consume queue or index space: puts refused"
                    ),
                    FailureNote::Quiet => {}
                }
                Err(PutMessageStatus::CreateMappedFileFailed)
            }
        }
    }
}
