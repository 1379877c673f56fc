//! Group commit, shared by both backends: a writer takes every append request that is
//! waiting, commits them in one transaction and answers each once the commit is durable.
//! SQLite has one writer; PostgreSQL runs several on one queue (postgres.rs).

use crate::log::Stored;
use crate::{Appended, Result, GROUP_COMMIT_MAX_EVENTS};
use sightline_core::NewEvent;
use tokio::sync::{mpsc, oneshot};

pub(crate) struct AppendRequest {
    pub events: Vec<NewEvent>,
    /// Each event's dedup key and stored body, made by the caller (log.rs).
    pub stored: Vec<Stored>,
    pub dedup_since: i64,
    pub reply: oneshot::Sender<Result<Vec<Appended>>>,
}

/// The first request plus whatever else is already queued, up to the group's size.
pub(crate) fn take_group(
    first: AppendRequest,
    queue: &mut mpsc::Receiver<AppendRequest>,
) -> Vec<AppendRequest> {
    let mut events = first.events.len();
    let mut group = vec![first];
    while events < GROUP_COMMIT_MAX_EVENTS {
        match queue.try_recv() {
            Ok(next) => {
                events += next.events.len();
                group.push(next);
            }
            Err(_) => break,
        }
    }
    group
}

/// Answers every request of a group with its outcome, or all with the commit's error.
pub(crate) fn answer(group: Vec<AppendRequest>, outcome: Result<Vec<Vec<Appended>>>) {
    let events: usize = group.iter().map(|r| r.events.len()).sum();
    metrics::histogram!("sightline_commit_batch_events").record(events as f64);
    metrics::histogram!("sightline_commit_batch_requests").record(group.len() as f64);
    match outcome {
        Ok(results) => {
            for (request, result) in group.into_iter().zip(results) {
                let _ = request.reply.send(Ok(result));
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "group commit failed; every request in it is refused");
            let message = match &err {
                crate::StoreError::Commit(message) => message.clone(),
                other => other.to_string(),
            };
            for request in group {
                let _ = request
                    .reply
                    .send(Err(crate::StoreError::Commit(message.clone())));
            }
        }
    }
}

/// Hands one request to the writer and waits for its durable outcome.
pub(crate) async fn submit(
    writer: &mpsc::Sender<AppendRequest>,
    events: Vec<NewEvent>,
    dedup_since: i64,
) -> Result<Vec<Appended>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // Hashing and compressing happen here, on the caller's task, so that appends made
    // concurrently do that work in parallel and the writers only insert.
    let stored = events.iter().map(Stored::of).collect();
    let (reply, outcome) = oneshot::channel();
    writer
        .send(AppendRequest {
            events,
            stored,
            dedup_since,
            reply,
        })
        .await
        .map_err(|_| crate::StoreError::Closed)?;
    outcome.await.map_err(|_| crate::StoreError::Closed)?
}
