//! The per-alert locks: two copies of one alert in flight at once (a
//! redelivery racing a retry, a duplicate publish) are handled one after
//! the other, so that the second reads the store after the first wrote it
//! and emails nobody twice.
//!
//! A lock lives only while someone holds or waits for it: the map never
//! grows with the alerts relais has seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

use crate::alert::AlertId;

/// One lock per alert id in flight, so that two copies of an alert are
/// handled one after the other. Entries live only while someone holds or
/// waits for them.
#[derive(Default)]
pub(super) struct AlertLocks {
    held: Mutex<HashMap<AlertId, Arc<tokio::sync::Mutex<()>>>>,
}

pub(super) struct AlertGuard<'a> {
    locks: &'a AlertLocks,
    id: AlertId,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl AlertLocks {
    /// Waits for `id`'s lock; it is released when the guard is dropped.
    pub(super) async fn lock(&self, id: &AlertId) -> AlertGuard<'_> {
        let mutex = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.clone())
            .or_default()
            .clone();
        let guard = mutex.clone().lock_owned().await;
        AlertGuard {
            locks: self,
            id: id.clone(),
            mutex,
            guard: Some(guard),
        }
    }
}

impl Drop for AlertGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut held = self
            .locks
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's reference and ours: nobody else waits for this alert.
        if Arc::strong_count(&self.mutex) == 2 {
            held.remove(&self.id);
        }
    }
}
