//! Reads of deliveries by id, gathered: the `get_delivery` calls of concurrent callers (the
//! workers' reads before each attempt, once a delivery is no longer in `fresh`) go out as one
//! statement per batch (`WHERE d.id = ANY(...)`), like the group commits: no fixed window, a
//! batch goes out at once when fewer than `READS_IN_FLIGHT` are running, and what arrives
//! meanwhile forms the next. A backlog drained from the database costs one round trip per
//! batch of attempts instead of one per attempt.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{db, delivery_of, sql_id};
use crate::error::{Error, Result};
use crate::model::Delivery;

/// Ids of one batch at most.
const MAX_BATCH: usize = 512;

/// Batches being read at the same time.
const READS_IN_FLIGHT: usize = 2;

/// The delivery's columns (`delivery_of`), then its id.
const READ: &str = concat!(
    "SELECT ",
    delivery_columns!(),
    ", d.id FROM deliveries d JOIN delivery_states s ON s.id = d.id WHERE d.id = ANY($1)"
);

struct Read {
    id: i64,
    done: oneshot::Sender<Result<Option<Delivery>>>,
}

/// Handle to the collector task; it stops when every handle is gone.
pub struct DeliveryReads {
    reads: mpsc::UnboundedSender<Read>,
}

impl DeliveryReads {
    /// Starts the collector on the current runtime, reading from `pool`.
    pub fn start(pool: PgPool) -> DeliveryReads {
        let (reads, queue) = mpsc::unbounded_channel();
        tokio::spawn(collect(pool, queue));
        DeliveryReads { reads }
    }

    /// The delivery with this id, None when there is none.
    pub async fn get(&self, id: u64) -> Result<Option<Delivery>> {
        let stopped = || Error::Internal("the store is shutting down".into());
        let (done, wait) = oneshot::channel();
        self.reads
            .send(Read {
                id: sql_id(id),
                done,
            })
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

async fn collect(pool: PgPool, mut queue: mpsc::UnboundedReceiver<Read>) {
    let running = Arc::new(Semaphore::new(READS_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = Arc::clone(&running).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(read) => batch.push(read),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            let _reading = permit;
            let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
            match read(&pool, &ids).await {
                Ok(found) => {
                    for r in batch {
                        let _ = r.done.send(found.get(&r.id).cloned().transpose());
                    }
                }
                Err(e) => {
                    for r in batch {
                        let _ = r.done.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

/// The deliveries among `ids`, by id (each decoded, or the error decoding it).
async fn read(pool: &PgPool, ids: &[i64]) -> Result<HashMap<i64, Result<Delivery>>> {
    let rows: Vec<PgRow> = sqlx::query(READ)
        .bind(ids)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| Ok((row.try_get::<i64, _>(8).map_err(db)?, delivery_of(row))))
        .collect()
}
