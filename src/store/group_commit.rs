//! The group commit: writes that arrive together (deliveries, the alerts'
//! sealed copies) are written in one transaction, so that durability does
//! not cost one disk flush (or one round trip to PostgreSQL) per email under
//! load. Each writer is answered once its write is committed, or with the
//! batch's failure.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Engine, Statement, StoreError};

/// Writes waiting for the group commit; bounded so that a stuck disk or
/// database slows the consumers instead of growing memory.
pub const QUEUE: usize = 1024;
/// Most writes in one transaction.
const BATCH: usize = 256;

/// A write waiting for the group commit, and who waits for it.
pub struct Write {
    pub statement: Statement,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The group commit: takes the writes that have arrived (up to [`BATCH`]),
/// runs them in one transaction, and answers each writer once it is
/// committed.
pub async fn run(engine: Engine, mut writes: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = writes.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match writes.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        // The statements move out: only the writers' replies are needed
        // once written.
        let statements = batch
            .iter_mut()
            .map(|write: &mut Write| std::mem::take(&mut write.statement))
            .collect();
        let written = engine.write(statements).await.map_err(Arc::new);
        for write in batch.drain(..) {
            let _ = write.reply.send(match &written {
                Ok(_) => Ok(()),
                // Every writer of a failed batch gets the same failure.
                Err(error) => Err(StoreError::Write(Arc::clone(error))),
            });
        }
    }
}
