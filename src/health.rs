//! Whether relais is alive and ready, for `/healthz`, `/readyz` and systemd.
//!
//! Alive: the main loop beats (it also pings systemd's watchdog). Ready: the
//! consumer is active on the broker, a registry is loaded, and the mail
//! server has not been found unusable as configured (TLS required but not
//! offered, a certificate refused, authentication refused); when not, the
//! reason (never a secret, never patient data) is kept for `/readyz`. A
//! mail server that is merely down does not make relais unready: that is a
//! transient failure, retried.

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
}

pub struct Health {
    started: Instant,
    /// Milliseconds since `started` at the last beat of the main loop.
    heartbeat: AtomicU64,
    registry_loaded: AtomicBool,
    consuming: AtomicBool,
    /// Why the consumer is not active, when it is not.
    consumer_down: Mutex<String>,
    /// Why the mail server cannot be used as configured, since the last
    /// connection that failed for such a reason (cleared by one that opens).
    smtp_unusable: Mutex<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            heartbeat: AtomicU64::new(0),
            registry_loaded: AtomicBool::new(false),
            consuming: AtomicBool::new(false),
            consumer_down: Mutex::new("not connected to the broker yet".into()),
            smtp_unusable: Mutex::new(None),
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

    pub fn registry_loaded(&self) {
        self.registry_loaded.store(true, Ordering::Relaxed);
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

    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    pub fn readiness(&self) -> Readiness {
        let consuming = self.is_consuming();
        let loaded = self.registry_loaded.load(Ordering::Relaxed);
        let smtp = self.smtp_problem().clone();
        Readiness {
            ready: consuming && loaded && smtp.is_none(),
            consumer: if consuming {
                "consuming".into()
            } else {
                self.consumer_down
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            },
            registry: if loaded { "loaded" } else { "not loaded" }.into(),
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
            }
        );
        health.registry_loaded();
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
        health.registry_loaded();
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
    fn alive_while_the_main_loop_beats() {
        let health = Health::default();
        health.beat();
        assert!(health.alive(Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!health.alive(Duration::from_millis(10)));
    }
}
