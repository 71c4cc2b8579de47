//! The absences référents declare themselves (on their absence page,
//! `ack`), as the relay resolves alerts with them: read from the store,
//! where every relais sharing it sees the same ones, kept for at most
//! [`FRESH`], and read again at once after this relais's page changed one.
//! So a declaration counts for the next alert of this relais, and within
//! a second for every other relais on the store, without a reload.
//!
//! When the store cannot be read (in time), the registry's absences alone
//! count, and the log says so: an alert never waits for the declared
//! absences. This module never decides who receives an alert (the
//! registry does, given these absences), and never writes to the store.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use time::{Date, OffsetDateTime};

use crate::availability::{Absence, paris_date};
use crate::registry::{ExtraAbsence, ExtraAbsences, ReferentId};
use crate::store::{DeclaredAbsence, Store, StoreError};
use crate::telemetry::events::Events;

/// How long the absences read stay in use: a declaration on another
/// relais of the store counts here within this.
pub const FRESH: Duration = Duration::from_secs(1);

/// The longest wait for the store's answer before resolving without the
/// declared absences.
const READ_WITHIN: Duration = Duration::from_secs(2);

/// The declared absences in force, read from the store and kept for a
/// moment; cheap to clone, every clone shares what was read.
#[derive(Clone)]
pub struct DeclaredAbsences {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    events: Events,
    /// What was read last, and when.
    cache: Mutex<Cache>,
    /// One read of the store at a time: the others wait for its answer.
    reading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cache {
    read: Option<Read>,
    /// Bumped by [`DeclaredAbsences::changed`]: a read begun before is
    /// out of date when it ends.
    generation: u64,
    /// Failed reads in a row (for the log).
    failures: u32,
}

struct Read {
    at: Instant,
    /// The Paris date they were read for: a new day reads them again.
    date: Date,
    generation: u64,
    absences: Arc<ExtraAbsences>,
}

impl DeclaredAbsences {
    pub fn new(store: Store, events: Events) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                events,
                cache: Mutex::new(Cache::default()),
                reading: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The declared absences in force at `now` (today's and those to
    /// come), as read at most [`FRESH`] ago; none when the store cannot be
    /// read (logged).
    pub async fn in_force(&self, now: OffsetDateTime) -> Arc<ExtraAbsences> {
        let date = paris_date(now);
        if let Some(fresh) = self.fresh(date) {
            return fresh;
        }
        let _one_at_a_time = self.inner.reading.lock().await;
        // Another task may have read them while this one waited.
        if let Some(fresh) = self.fresh(date) {
            return fresh;
        }
        let generation = self.lock().generation;
        let read = tokio::time::timeout(READ_WITHIN, self.inner.store.declared_absences(date, now))
            .await
            .unwrap_or_else(|_| Err(StoreError::Shape("no answer in time".into())));
        let mut cache = self.lock();
        let absences = match read {
            Ok(rows) => {
                if cache.failures > 0 {
                    self.inner.events.absences_read_again(cache.failures);
                    cache.failures = 0;
                }
                Arc::new(extra(rows))
            }
            Err(error) => {
                cache.failures = cache.failures.saturating_add(1);
                self.inner
                    .events
                    .absences_unreadable(&error, cache.failures);
                Arc::new(ExtraAbsences::default())
            }
        };
        cache.read = Some(Read {
            at: Instant::now(),
            date,
            generation,
            absences: absences.clone(),
        });
        absences
    }

    /// One of them changed (declared or cancelled on this relais's page):
    /// the next resolution reads them again.
    pub fn changed(&self) {
        let mut cache = self.lock();
        cache.generation += 1;
        cache.read = None;
    }

    /// What was read, if it is still fresh for `date`.
    fn fresh(&self, date: Date) -> Option<Arc<ExtraAbsences>> {
        let cache = self.lock();
        let read = cache.read.as_ref()?;
        (read.generation == cache.generation && read.date == date && read.at.elapsed() < FRESH)
            .then(|| read.absences.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The store's rows as the registry takes them; a row it cannot read
/// (written by hand, say) is left out.
pub fn extra(rows: Vec<DeclaredAbsence>) -> ExtraAbsences {
    ExtraAbsences::new(rows.into_iter().filter_map(|row| {
        Some(ExtraAbsence {
            referent: ReferentId::parse(&row.referent_id).ok()?,
            absence: Absence::new(row.from, row.to).ok()?,
            deputy: row
                .deputy_id
                .as_deref()
                .and_then(|d| ReferentId::parse(d).ok()),
        })
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use time::macros::datetime;

    use super::*;
    use crate::store::AbsenceDeclaration;
    use crate::telemetry::metrics::Metrics;

    fn declaration(at: OffsetDateTime) -> AbsenceDeclaration<'static> {
        AbsenceDeclaration {
            referent_id: "camille",
            from: time::macros::date!(2026 - 12 - 10),
            to: time::macros::date!(2026 - 12 - 12),
            deputy_id: Some("dominique"),
            declared_by: "camille",
            declared_at: at,
        }
    }

    #[tokio::test]
    async fn a_change_on_this_relais_counts_at_once_and_an_unreadable_store_counts_for_nothing() {
        // Arrange
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relais.db");
        let store = Store::sqlite(&path).unwrap();
        let absences = DeclaredAbsences::new(store.clone(), Events::new(Arc::new(Metrics::new())));
        let now = datetime!(2026-12-11 10:00:00 +01:00);
        let before = absences.in_force(now).await;

        // Act: declared here, then the table made unreadable.
        store
            .declare_absence(declaration(now - time::Duration::hours(1)))
            .await
            .unwrap();
        absences.changed();
        let declared = absences.in_force(now).await;
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE declared_absences")
            .unwrap();
        absences.changed();
        let unreadable = absences.in_force(now).await;

        // Assert
        assert!(before.is_empty());
        assert_eq!(declared.len(), 1);
        assert!(unreadable.is_empty());
    }
}
