//! Group commit for the engine's small, frequent writes.
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit is an fsync: 10,000 VM steps
//! written one transaction each wait on each other's fsyncs. Here a writer task takes every write
//! queued at that moment, runs each in a savepoint of one transaction (its own `begin` becomes a
//! `SAVEPOINT`, its `commit` a `RELEASE`, an error rolls back only its own savepoint), commits
//! once, and only then answers each caller. So durability is unchanged (nothing is acknowledged
//! before it is on disk) and a batch of 100 writes costs one fsync.
//!
//! On PostgreSQL writes run at once on their own connection: the server already groups
//! concurrent commits into one WAL flush, and other nodes write beside this one anyway.

use std::future::Future;
use std::pin::Pin;

use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

use super::Pool;
use crate::StoreError;

/// A backend connection, as a write is handed one.
pub(super) type Conn = <super::Db as sqlx::Database>::Connection;
pub(super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Answers one caller once the batch's commit is known.
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;
/// One queued write: runs on the batch's transaction and returns how to answer its caller.
type Work = Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Answer> + Send>;

/// The most writes committed together; more wait for the next batch.
const MAX_BATCH: usize = 512;

#[derive(Clone)]
pub(super) struct Committer {
    pool: Pool,
    /// `None`: no grouping, each write commits on its own (PostgreSQL).
    queue: Option<mpsc::UnboundedSender<Work>>,
}

impl Committer {
    /// `grouped`: run writes through one writer task that commits them in batches.
    pub(super) fn new(pool: Pool, grouped: bool) -> Committer {
        let queue = grouped.then(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(commit_loop(pool.clone(), receiver));
            sender
        });
        Committer { pool, queue }
    }

    /// Runs `write` (which begins and commits its own transaction on the connection it is
    /// given) and answers once it is durable.
    pub(super) async fn run<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        let Some(queue) = &self.queue else {
            let mut connection = self.pool.acquire().await?;
            return write(&mut connection).await;
        };
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |connection| {
            Box::pin(async move {
                let result = write(connection).await;
                Box::new(move |committed: Result<(), String>| {
                    let _ = reply.send(match committed {
                        Ok(()) => result,
                        // Its own error first; else the batch's commit failed.
                        Err(error) => result.and(Err(StoreError::Commit(error))),
                    });
                }) as Answer
            })
        });
        let lost = || StoreError::Commit("the store's writer stopped before the write ran".into());
        queue.send(work).map_err(|_| lost())?;
        answer.await.map_err(|_| lost())?
    }
}

async fn commit_loop(pool: Pool, mut queue: mpsc::UnboundedReceiver<Work>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(work) => batch.push(work),
                Err(_) => break,
            }
        }
        metrics::histogram!("standby_store_group_commit_writes").record(batch.len() as f64);
        let mut answers = Vec::with_capacity(batch.len());
        let committed = async {
            let mut connection = pool.acquire().await?;
            let mut transaction = connection.begin().await?;
            for work in batch.drain(..) {
                answers.push(work(&mut transaction).await);
            }
            transaction.commit().await
        }
        .await
        .map_err(|error| error.to_string());
        if let Err(error) = &committed {
            // Writes that never ran are answered too: dropping them drops their reply.
            tracing::error!(%error, writes = answers.len() + batch.len(), "a group commit failed");
        }
        for answer in answers {
            answer(committed.clone());
        }
    }
}
