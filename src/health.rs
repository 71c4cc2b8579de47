//! Whether relais is alive and ready, for `/healthz`, `/readyz` and systemd.
//!
//! Alive: the main loop beats (it also pings systemd's watchdog). Ready: the
//! consumer is active on the broker, a registry is loaded, and the mail
//! server has not been found unusable as configured (TLS required but not
//! offered, a certificate refused, authentication refused); when not, the
//! reason (never a secret, never patient data) is kept for `/readyz`. A
//! mail server that is merely down does not make relais unready: that is a
//! transient failure, retried. A PostgreSQL store that cannot be reached
//! does. A standby (`standby`: another relais holds the lease) is ready: it
//! is doing its job, waiting to take over; `role` says which it is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What `/readyz` answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub consumer: String,
    pub registry: String,
    pub smtp: String,
    pub store: String,
    /// `active` (consumes), `standby` (waits for the lock) or `starting`.
    pub role: String,
}

pub struct Health {
    started: Instant,
    /// Milliseconds since `started` at the last beat of the main loop.
    heartbeat: AtomicU64,
    /// The registry in force, as `/readyz` names it; `None` before the
    /// first is loaded.
    registry: Mutex<Option<String>>,
    consuming: AtomicBool,
    /// Why the consumer is not active, when it is not.
    consumer_down: Mutex<String>,
    /// Why the mail server cannot be used as configured, since the last
    /// connection that failed for such a reason (cleared by one that opens).
    smtp_unusable: Mutex<Option<String>>,
    /// Why the store cannot be used, since the last request that failed
    /// (cleared by one that succeeds).
    store_unusable: Mutex<Option<String>>,
    /// A standby waiting for the lock.
    standby: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            heartbeat: AtomicU64::new(0),
            registry: Mutex::new(None),
            consuming: AtomicBool::new(false),
            consumer_down: Mutex::new("not connected to the broker yet".into()),
            smtp_unusable: Mutex::new(None),
            store_unusable: Mutex::new(None),
            standby: AtomicBool::new(false),
        }
    }
}

impl Health {
    pub fn beat(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat.store(now, Ordering::Relaxed);
    }

    /// Whether the main loop beat within `silence`.
    pub fn alive(&self, silence: Duration) -> bool {
        let last = Duration::from_millis(self.heartbeat.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last) <= silence
    }

    /// A registry is in force: `which` names it (its digest and version).
    pub fn registry_loaded(&self, which: String) {
        *self.registry.lock().unwrap_or_else(PoisonError::into_inner) = Some(which);
    }

    pub fn consuming(&self) {
        self.consuming.store(true, Ordering::Relaxed);
    }

    pub fn consumer_down(&self, why: impl Into<String>) {
        *self
            .consumer_down
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = why.into();
        self.consuming.store(false, Ordering::Relaxed);
    }

    /// The mail server cannot be used as the settings say; `why` names
    /// the problem (no secret).
    pub fn smtp_unusable(&self, why: impl Into<String>) {
        *self.smtp_problem() = Some(why.into());
    }

    /// A connection to the mail server opened as configured.
    pub fn smtp_usable(&self) {
        self.smtp_problem().take();
    }

    fn smtp_problem(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.smtp_unusable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The store could not be used; `why` names the problem (no secret).
    pub fn store_unusable(&self, why: impl Into<String>) {
        *self
            .store_unusable
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(why.into());
    }

    /// A request to the store succeeded.
    pub fn store_usable(&self) {
        self.store_unusable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Whether this relais is a standby (another one holds the lease).
    pub fn standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Relaxed);
    }

    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    pub fn readiness(&self) -> Readiness {
        let consuming = self.is_consuming();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let loaded = registry.is_some();
        let smtp = self.smtp_problem().clone();
        let store = self
            .store_unusable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let standby = self.standby.load(Ordering::Relaxed);
        Readiness {
            ready: (consuming || standby) && loaded && smtp.is_none() && store.is_none(),
            role: if standby {
                "standby"
            } else if consuming {
                "active"
            } else {
                "starting"
            }
            .into(),
            store: store.unwrap_or_else(|| "ok".into()),
            consumer: if standby {
                "standby: another relais holds the lock and consumes".into()
            } else if consuming {
                "consuming".into()
            } else {
                self.consumer_down
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            },
            registry: registry
                .map_or_else(|| "not loaded".into(), |which| format!("loaded: {which}")),
            smtp: smtp.unwrap_or_else(|| "ok".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_consuming_with_a_registry() {
        let health = Health::default();
        assert_eq!(
            health.readiness(),
            Readiness {
                ready: false,
                consumer: "not connected to the broker yet".into(),
                registry: "not loaded".into(),
                smtp: "ok".into(),
                store: "ok".into(),
                role: "starting".into(),
            }
        );
        health.registry_loaded("sha256:0123456789ab".into());
        health.consuming();
        assert!(health.readiness().ready);
        health.consumer_down("lost the broker: connection reset");
        let readiness = health.readiness();
        assert!(!readiness.ready);
        assert_eq!(readiness.consumer, "lost the broker: connection reset");
    }

    #[test]
    fn an_unusable_mail_server_makes_relais_unready_until_a_connection_opens() {
        let health = Health::default();
        health.registry_loaded("sha256:0123456789ab".into());
        health.consuming();
        health.smtp_unusable("the server does not offer STARTTLS");
        let readiness = health.readiness();
        assert!(!readiness.ready);
        assert_eq!(readiness.smtp, "the server does not offer STARTTLS");
        health.smtp_usable();
        assert!(health.readiness().ready);
        assert_eq!(health.readiness().smtp, "ok");
    }

    #[test]
    fn a_standby_is_ready_and_says_so_and_an_unreachable_store_makes_relais_unready() {
        let health = Health::default();
        health.registry_loaded("sha256:0123456789ab".into());
        health.standby(true);
        let standby = health.readiness();
        assert!(standby.ready);
        assert_eq!(standby.role, "standby");
        health.standby(false);
        health.consuming();
        assert_eq!(health.readiness().role, "active");
        health.store_unusable("the PostgreSQL store postgres://relais:***@db/relais: timed out");
        let readiness = health.readiness();
        assert!(!readiness.ready);
        assert_eq!(
            readiness.store,
            "the PostgreSQL store postgres://relais:***@db/relais: timed out"
        );
        health.store_usable();
        assert!(health.readiness().ready);
    }

    #[test]
    fn alive_while_the_main_loop_beats() {
        let health = Health::default();
        health.beat();
        assert!(health.alive(Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!health.alive(Duration::from_millis(10)));
    }
}
