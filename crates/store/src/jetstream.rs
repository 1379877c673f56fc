//! The event log on NATS JetStream, for several nodes: the stream holds the events, a
//! stream sequence is an event's seq, and PostgreSQL (the rest of the state) holds the
//! dedup claims. [`PostgresStore`](crate::PostgresStore) hands its [`EventLog`] role to
//! this when it is opened with [`LogSettings`].
//!
//! - **One subject per source**: `<stream>.events.<source id>`, so that a source's read is
//!   a subject filter.
//! - **A message is one event**, framed by [`frame`]: its type, time, messageId and where
//!   the id was cut out of the body, then the body as the SQL logs store it (`log.rs`: the
//!   id cut out, zstd with the shipped dictionary). Nothing of the event is in a header.
//! - **Exactly once across nodes and restarts.** An append first claims each (source,
//!   messageId)'s digest in PostgreSQL's `dedup` as *unpublished*, publishes the claimed
//!   events with the digest as `Nats-Msg-Id`, and marks the claims published once JetStream
//!   acknowledged them; only then is the client answered. A claim within the window that
//!   is published makes a duplicate. A claim left unpublished (its node died between the
//!   claim and the acknowledgement) is in doubt: the event is published again with the same
//!   `Nats-Msg-Id`, and JetStream's own duplicate window drops it when the first publish
//!   had landed after all. Two nodes taking the same event at once meet the same way.
//!   A node that dies after JetStream stored the event but before the claim was marked
//!   leaves a claim in doubt that a retry after JetStream's duplicate window (`[log]
//!   duplicate_window`, 2 minutes by default) would publish again. So each claim records
//!   when it was taken (`taken_at`, the node's clock), and an append that meets a claim
//!   still unpublished after that window (which must exceed an append's time) settles it:
//!   marked published when the stream holds its event (looked for among the messages
//!   JetStream stored within a few seconds of the claim, [`JetStreamLog::find_keys`]),
//!   removed otherwise, then claimed again. A claim is marked published by an upsert, so
//!   that one removed while its append was still under way is put back.
//! - **Reads** make an ephemeral pull consumer from the seq asked for (acknowledging
//!   nothing), fetch one page without waiting, and delete it. Every wait on the server is
//!   bounded, so a read caught by a failover fails and is retried rather than hanging.

use crate::log_settings::{LogInfo, LogSettings};
use crate::{log, Appended, Result, StoreError};
use async_nats::jetstream::{self, consumer, stream, ErrorCode};
use futures_util::StreamExt;
use sightline_core::{EventType, NewEvent, StoredEvent};
use std::collections::HashSet;
use std::time::Duration;

/// Where a read after `seq` starts.
fn after_seq(seq: i64) -> consumer::DeliverPolicy {
    consumer::DeliverPolicy::ByStartSequence {
        start_sequence: seq.max(0) as u64 + 1,
    }
}

/// Events read per page while looking for dedup claims' events ([`JetStreamLog::find_keys`]).
const FIND_PAGE: usize = 1_000;

/// The stream configuration these settings ask for.
fn stream_config(settings: &LogSettings) -> stream::Config {
    stream::Config {
        name: settings.stream.clone(),
        subjects: vec![format!("{}.events.*", settings.stream)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        max_age: settings.max_age.unwrap_or_default(),
        duplicate_window: settings.duplicate_window,
        discard: stream::DiscardPolicy::Old,
        allow_direct: true,
        // Erasure deletes a person's events; nothing else does.
        deny_delete: false,
        description: Some("Sightline's event log".into()),
        ..Default::default()
    }
}

/// An event to publish, under the dedup claim it holds.
pub(crate) struct Message<'a> {
    pub event: &'a NewEvent,
    pub stored: &'a log::Stored,
    /// When its claim was taken: with the digest, its `Nats-Msg-Id`.
    pub claimed_at: i64,
}

pub(crate) struct JetStreamLog {
    context: jetstream::Context,
    stream: stream::Stream,
    settings: LogSettings,
}

/// The servers `--log-url` names: one URL, or several separated by commas (seeds of a
/// cluster: the client learns the others from whichever it reaches, and moves to another
/// when its server goes).
fn servers(url: &str) -> Result<Vec<async_nats::ServerAddr>> {
    url.split(',')
        .map(|one| {
            one.trim().parse().map_err(|e| {
                StoreError::Open(format!(
                    "--log-url {:?} is not a NATS URL ({e}): give nats://HOST:PORT, or several \
                     separated by commas",
                    crate::redact_url(one.trim())
                ))
            })
        })
        .collect()
}

/// How long each attempt to open a read of the log may take (see
/// [`JetStreamLog::open_read`]); a consumer is made in milliseconds otherwise.
const OPEN_READ_WAITS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// The longest wait for the next message of a page being read. A page is fetched without
/// waiting, so its messages come at once; silence this long means the consumer's server
/// died mid-read (a failover), and the reader gets an error it retries instead of a read
/// that never ends.
const READ_MESSAGE_WAIT: Duration = Duration::from_secs(10);

fn nats_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Commit(format!("JetStream {what}: {e}"))
}

impl JetStreamLog {
    /// Connects, and creates the stream when it is absent; a stream that exists with
    /// another configuration than `settings` ask for stops the start.
    pub async fn open(settings: &LogSettings) -> Result<JetStreamLog> {
        settings.check()?;
        let url = crate::redact_url(&settings.url);
        let client = async_nats::ConnectOptions::new()
            .name("sightline")
            .connection_timeout(Duration::from_secs(5))
            .connect(servers(&settings.url)?)
            .await
            .map_err(|e| {
                StoreError::Open(format!(
                    "cannot reach NATS at {url}: {e}: start nats-server with JetStream (nats-server -js) or fix --log-url"
                ))
            })?;
        let context = jetstream::new(client);
        let wanted = stream_config(settings);
        let stream = match context.get_stream(&settings.stream).await {
            Ok(stream) => {
                check_config(&stream.cached_info().config, &wanted)?;
                stream
            }
            Err(e) => match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(js)
                    if js.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    context.create_stream(wanted).await.map_err(|e| {
                        StoreError::Open(format!(
                            "cannot create the log stream {:?} on {url}: {e}",
                            settings.stream
                        ))
                    })?
                }
                _ => {
                    return Err(StoreError::Open(format!(
                        "NATS at {url} does not serve JetStream ({e}): start nats-server with -js"
                    )))
                }
            },
        };
        Ok(JetStreamLog {
            context,
            stream,
            settings: settings.clone(),
        })
    }

    /// JetStream's window for a repeated message id, as the stream is configured.
    pub fn duplicate_window(&self) -> Duration {
        self.settings.duplicate_window
    }

    fn subject(&self, source_id: i64) -> String {
        format!("{}.events.{source_id}", self.settings.stream)
    }

    /// Publishes `messages` in order and waits for every acknowledgement: `Stored(seq)`, or
    /// `Duplicate` when JetStream had the message already.
    pub async fn publish(&self, messages: &[Message<'_>]) -> Result<Vec<Appended>> {
        let mut acks = Vec::with_capacity(messages.len());
        for Message {
            event,
            stored,
            claimed_at,
        } in messages
        {
            let publish = jetstream::message::PublishMessage::build()
                .payload(frame(event, &stored.body).into())
                .message_id(format!("{}-{claimed_at}", hex(&stored.key)));
            acks.push(
                self.context
                    .send_publish(self.subject(event.source_id), publish)
                    .await
                    .map_err(|e| nats_error("publish", e))?,
            );
        }
        let mut appended = Vec::with_capacity(acks.len());
        for ack in acks {
            let ack = ack.await.map_err(|e| nats_error("publish", e))?;
            appended.push(if ack.duplicate {
                Appended::Duplicate
            } else {
                Appended::Stored(ack.sequence as i64)
            });
        }
        Ok(appended)
    }

    /// The consumer a page is read through, made in as many as [`OPEN_READ_WAITS`]
    /// attempts: once a server of a JetStream cluster has died, the cluster still places a
    /// few new consumers in a hundred on it (nats-server 2.9, replicated stream), and those
    /// are never answered; another attempt lands on a live server.
    async fn open_read(
        &self,
        config: consumer::pull::Config,
    ) -> Result<consumer::Consumer<consumer::pull::Config>> {
        let mut failed = String::new();
        for wait in OPEN_READ_WAITS {
            match tokio::time::timeout(wait, self.stream.create_consumer(config.clone())).await {
                Ok(Ok(consumer)) => return Ok(consumer),
                Ok(Err(e)) => failed = e.to_string(),
                Err(_) => failed = format!("no answer within {wait:?}"),
            }
        }
        Err(nats_error("read", failed))
    }

    pub async fn read_events(
        &self,
        after: i64,
        limit: usize,
        source_id: Option<i64>,
    ) -> Result<Vec<StoredEvent>> {
        let mut events = Vec::with_capacity(limit.min(1024));
        self.read_from(after_seq(after), limit, source_id, |event, _| {
            events.push(event)
        })
        .await?;
        Ok(events)
    }

    /// Which of `keys` (dedup digests) the stream holds among the messages JetStream stored
    /// from `from_ms` to `to_ms` (by its clock).
    pub async fn find_keys(
        &self,
        keys: &HashSet<[u8; 16]>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<HashSet<[u8; 16]>> {
        let start_time =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(from_ms.max(0)) * 1_000_000)
                .map_err(|e| nats_error("read", e))?;
        let mut from = consumer::DeliverPolicy::ByStartTime { start_time };
        let mut found = HashSet::new();
        loop {
            // How many were read, and the last one's seq and stored time.
            let (mut read, mut last) = (0, (0, i64::MAX));
            self.read_from(from, FIND_PAGE, None, |event, stored_at| {
                read += 1;
                last = (event.seq, stored_at);
                let key = log::dedup_key(event.source_id, &event.message_id);
                if stored_at <= to_ms && keys.contains(&key) {
                    found.insert(key);
                }
            })
            .await?;
            if read < FIND_PAGE || last.1 > to_ms || found.len() == keys.len() {
                return Ok(found);
            }
            from = after_seq(last.0);
        }
    }

    /// Hands `each` up to `limit` events from `from` on (of one source, when given), each
    /// with the time JetStream stored it (ms).
    async fn read_from(
        &self,
        from: consumer::DeliverPolicy,
        limit: usize,
        source_id: Option<i64>,
        mut each: impl FnMut(StoredEvent, i64),
    ) -> Result<()> {
        if limit == 0 {
            return Ok(());
        }
        let config = consumer::pull::Config {
            deliver_policy: from,
            ack_policy: consumer::AckPolicy::None,
            filter_subject: source_id.map(|s| self.subject(s)).unwrap_or_default(),
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        };
        let consumer = self.open_read(config).await?;
        let name = consumer.cached_info().name.clone();
        let silent = || nats_error("read", format!("no message within {READ_MESSAGE_WAIT:?}"));
        let read = async {
            let mut messages = tokio::time::timeout(
                READ_MESSAGE_WAIT,
                consumer.fetch().max_messages(limit).messages(),
            )
            .await
            .map_err(|_| silent())?
            .map_err(|e| nats_error("read", e))?;
            while let Some(message) = tokio::time::timeout(READ_MESSAGE_WAIT, messages.next())
                .await
                .map_err(|_| silent())?
            {
                let message = message.map_err(|e| nats_error("read", e))?;
                let info = message.info().map_err(|e| nats_error("read", e))?;
                let stored_at = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
                let event = unframe(
                    info.stream_sequence as i64,
                    &message.subject,
                    &message.payload,
                )?;
                each(event, stored_at);
            }
            Ok(())
        }
        .await;
        // An abandoned consumer goes by itself after its inactive threshold; deleting it
        // now keeps the stream's consumer count low under load.
        let _ = self.stream.delete_consumer(&name).await;
        read
    }

    pub async fn last_seq(&self) -> Result<i64> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| nats_error("stream info", e))?
            .state
            .last_sequence;
        Ok(info as i64)
    }

    pub async fn info(&self) -> Result<LogInfo> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| nats_error("stream info", e))?;
        Ok(LogInfo {
            url: crate::redact_url(&self.settings.url),
            stream: info.config.name.clone(),
            subjects: info.config.subjects.clone(),
            replicas: info.config.num_replicas,
            max_age_secs: info.config.max_age.as_secs(),
            duplicate_window_secs: info.config.duplicate_window.as_secs(),
            messages: info.state.messages,
            bytes: info.state.bytes,
            first_seq: info.state.first_sequence,
            last_seq: info.state.last_sequence,
        })
    }

    /// The events at `seqs`, in that order; those no longer in the stream are left out.
    pub async fn events_at(&self, seqs: &[i64]) -> Result<Vec<StoredEvent>> {
        let mut events = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            match self.stream.get_raw_message(seq as u64).await {
                Ok(message) => events.push(unframe(seq, &message.subject, &message.payload)?),
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(nats_error("read", e)),
            }
        }
        Ok(events)
    }

    /// The dedup digests of the events at `seqs` (those still in the stream).
    pub async fn keys_of(&self, seqs: &[i64]) -> Result<Vec<[u8; 16]>> {
        Ok(self
            .events_at(seqs)
            .await?
            .iter()
            .map(|event| log::dedup_key(event.source_id, &event.message_id))
            .collect())
    }

    /// Deletes the events at `seqs` from the stream (JetStream overwrites them on disk);
    /// returns how many were there.
    pub async fn delete(&self, seqs: &[i64]) -> Result<u64> {
        let mut deleted = 0;
        for &seq in seqs {
            match self.stream.delete_message(seq as u64).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(e) if e.to_string().contains("no message found") => {}
                Err(e) => return Err(nats_error("delete", e)),
            }
        }
        Ok(deleted)
    }
}

fn is_missing(e: &stream::RawMessageError) -> bool {
    match e.kind() {
        stream::RawMessageErrorKind::NoMessageFound => true,
        stream::RawMessageErrorKind::JetStream(js) => {
            js.error_code() == ErrorCode::NO_MESSAGE_FOUND
        }
        _ => false,
    }
}

/// An existing stream must be configured as asked: where events go, how many copies are
/// kept and for how long, and that erasure may delete from it.
fn check_config(found: &stream::Config, wanted: &stream::Config) -> Result<()> {
    let mut differences = Vec::new();
    if found.subjects != wanted.subjects {
        differences.push(format!(
            "subjects {:?} (Sightline writes to {:?})",
            found.subjects, wanted.subjects
        ));
    }
    if found.num_replicas != wanted.num_replicas {
        differences.push(format!(
            "replicas {} where [log] replicas asks {}",
            found.num_replicas, wanted.num_replicas
        ));
    }
    if found.max_age != wanted.max_age {
        differences.push(format!(
            "max age {} where [log] max_age asks {}",
            age(found.max_age),
            age(wanted.max_age)
        ));
    }
    if found.retention != wanted.retention {
        differences.push(format!(
            "retention {:?} where the log needs limits (events are kept for every processor)",
            found.retention
        ));
    }
    if found.deny_delete {
        differences.push("deny_delete set (erasure must delete a person's events)".into());
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(StoreError::Open(format!(
        "the log stream {:?} exists with {}: change the [log] settings to match it, or edit the stream (nats stream edit {}) and start again",
        found.name,
        differences.join("; "),
        found.name
    )))
}

fn age(age: Duration) -> String {
    if age.is_zero() {
        "none (kept forever)".into()
    } else {
        format!("{}s", age.as_secs())
    }
}

fn hex(key: &[u8; 16]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Frame version 1: `1`, received_at (i64 BE), the type code (u8), where the id was cut
/// (i32 BE, -1 when it was not), the messageId's length (u32 BE) and bytes, then the
/// encoded body (its tag byte first).
const FRAME_V1: u8 = 1;
const HEADER: usize = 1 + 8 + 1 + 4 + 4;

pub(crate) fn frame(event: &NewEvent, body: &log::Encoded) -> Vec<u8> {
    let id = event.message_id.as_bytes();
    let mut out = Vec::with_capacity(HEADER + id.len() + body.payload.len());
    out.push(FRAME_V1);
    out.extend_from_slice(&event.received_at.to_be_bytes());
    out.push(log::type_code(event.event_type) as u8);
    out.extend_from_slice(&body.id_at.unwrap_or(-1).to_be_bytes());
    out.extend_from_slice(&(id.len() as u32).to_be_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&body.payload);
    out
}

/// The event in a message of `subject` at `seq`; a message Sightline did not write is
/// `Corrupt`, never read as some default.
pub(crate) fn unframe(seq: i64, subject: &str, bytes: &[u8]) -> Result<StoredEvent> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("log message {seq}: {what}"));
    let source_id = subject
        .rsplit('.')
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| corrupt("its subject names no source"))?;
    if bytes.len() < HEADER || bytes[0] != FRAME_V1 {
        return Err(corrupt("not an event frame"));
    }
    let received_at = i64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
    let event_type: EventType =
        log::type_from_code(i64::from(bytes[9])).ok_or_else(|| corrupt("unknown event type"))?;
    let id_at = i32::from_be_bytes(bytes[10..14].try_into().expect("4 bytes"));
    let id_len = u32::from_be_bytes(bytes[14..18].try_into().expect("4 bytes")) as usize;
    let rest = &bytes[HEADER..];
    if rest.len() < id_len {
        return Err(corrupt("its messageId is cut short"));
    }
    let message_id = std::str::from_utf8(&rest[..id_len])
        .map_err(|_| corrupt("its messageId is not UTF-8"))?
        .to_owned();
    let id_at = (id_at >= 0).then_some(i64::from(id_at));
    let body = log::decode(&message_id, id_at, &rest[id_len..]).map_err(|e| corrupt(&e))?;
    Ok(StoredEvent {
        seq,
        source_id,
        message_id,
        event_type,
        received_at,
        body,
    })
}

/// The first occurrence of each (source, messageId) in `events`, with its place; later
/// ones are duplicates of it within the request.
pub(crate) fn first_occurrences(events: &[NewEvent]) -> Vec<usize> {
    let mut seen = HashSet::new();
    (0..events.len())
        .filter(|&i| seen.insert((events[i].source_id, events[i].message_id.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_log_url_names_one_server_or_several() {
        assert_eq!(servers("nats://127.0.0.1:4222").unwrap().len(), 1);
        let cluster = servers("nats://a:4222, nats://b:4222,nats://c:4222").unwrap();
        let hosts: Vec<&str> = cluster.iter().map(|s| s.host()).collect();
        assert_eq!(hosts, ["a", "b", "c"]);
        let Err(StoreError::Open(said)) = servers("nats://a:4222,nats://u:secret@b:port") else {
            panic!("a bad port was taken");
        };
        assert!(
            said.contains("\"nats://u:***@b:port\" is not a NATS URL"),
            "{said}"
        );
        assert!(!said.contains("secret"), "{said}");
    }

    fn event(message_id: &str, body: &str, kind: EventType) -> NewEvent {
        NewEvent {
            source_id: 7,
            message_id: message_id.into(),
            event_type: kind,
            received_at: 1_700_000_000_123,
            body: body.into(),
        }
    }

    proptest! {
        #[test]
        fn a_frame_reads_back_as_the_event(
            id in "\\PC{0,40}",
            extra in "\\PC{0,200}",
            kind in 0..EventType::ALL.len(),
        ) {
            let body = serde_json::json!({"messageId": id, "event": extra}).to_string();
            let new = event(&id, &body, EventType::ALL[kind]);
            let encoded = log::encode(&new.message_id, &new.body);
            let read = unframe(42, "S.events.7", &frame(&new, &encoded)).unwrap();
            prop_assert_eq!(read.seq, 42);
            prop_assert_eq!(read.source_id, 7);
            prop_assert_eq!(read.message_id, id);
            prop_assert_eq!(read.event_type, new.event_type);
            prop_assert_eq!(read.received_at, new.received_at);
            prop_assert_eq!(read.body, body);
        }

        #[test]
        fn any_bytes_are_an_event_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = unframe(1, "S.events.1", &bytes);
        }
    }

    #[test]
    fn a_message_not_written_by_sightline_is_refused() {
        assert!(unframe(1, "S.events.1", b"hello").is_err());
        assert!(unframe(1, "S.events.x", &[FRAME_V1; 40]).is_err());
        let new = event("m", "{}", EventType::Track);
        let mut framed = frame(&new, &log::encode("m", "{}"));
        framed[14..18].copy_from_slice(&1000u32.to_be_bytes());
        assert!(unframe(1, "S.events.7", &framed).is_err());
    }

    #[test]
    fn a_differently_configured_stream_is_named_with_what_differs() {
        let wanted = stream_config(&LogSettings::new("nats://x"));
        assert!(check_config(&wanted, &wanted).is_ok());
        let mut found = wanted.clone();
        found.num_replicas = 3;
        found.deny_delete = true;
        let error = check_config(&found, &wanted).unwrap_err().to_string();
        assert!(
            error.contains("replicas 3 where [log] replicas asks 1"),
            "{error}"
        );
        assert!(error.contains("deny_delete"), "{error}");
    }

    #[test]
    fn repeats_within_a_request_keep_their_first_place() {
        let events = [
            event("a", "{}", EventType::Track),
            event("b", "{}", EventType::Track),
            event("a", "{}", EventType::Track),
        ];
        assert_eq!(first_occurrences(&events), vec![0, 1]);
    }
}
