//! The group commit: deliveries that arrive together are written in one
//! transaction, so that durability does not cost one disk flush (or one
//! round trip to PostgreSQL) per email under load. Each writer is answered
//! once its delivery is committed, or with the batch's failure.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Digest, Engine, SentEmail, StoreError};

/// Deliveries waiting for the group commit; bounded so that a stuck disk
/// or database slows the consumers instead of growing memory.
pub const QUEUE: usize = 1024;
/// Most deliveries written in one transaction.
const BATCH: usize = 256;

/// A delivery waiting for the group commit, and who waits for it.
pub struct Write {
    pub delivery: SentEmail,
    pub digest: Digest,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The group commit: takes the deliveries that have arrived (up to
/// [`BATCH`]), writes them in one transaction, and answers each writer
/// once it is committed.
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
        // The deliveries' fields move into the statements: only the
        // writers' replies are needed once written.
        let statements = batch
            .iter_mut()
            .map(|write| {
                let delivery = &mut write.delivery;
                let parameters = vec![
                    std::mem::take(&mut delivery.publisher).into(),
                    std::mem::take(&mut delivery.alert_id).into(),
                    std::mem::take(&mut delivery.referent_id).into(),
                    std::mem::take(&mut delivery.email).into(),
                    std::mem::take(&mut delivery.message_id).into(),
                    std::mem::take(&mut delivery.smtp_reply).into(),
                    delivery.delivered_at.into(),
                    write.digest.as_slice().into(),
                    delivery.network.take().into(),
                    delivery.consent.take().into(),
                ];
                (
                    "INSERT INTO deliveries
                         (publisher, alert_id, referent_id, email, message_id, smtp_reply,
                          delivered_at, digest, network, consent)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (alert_id, publisher, referent_id) DO NOTHING",
                    parameters,
                )
            })
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
