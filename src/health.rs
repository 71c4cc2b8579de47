//! Whether relais is alive and ready, for `/healthz`, `/readyz` and systemd.
//!
//! Alive: the main loop beats (it also pings systemd's watchdog). Ready: the
//! consumer is active on the broker and a registry is loaded; when not, the
//! reason (never a secret, never patient data) is kept for `/readyz`.

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
}

pub struct Health {
    started: Instant,
    /// Milliseconds since `started` at the last beat of the main loop.
    heartbeat: AtomicU64,
    registry_loaded: AtomicBool,
    consuming: AtomicBool,
    /// Why the consumer is not active, when it is not.
    consumer_down: Mutex<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            heartbeat: AtomicU64::new(0),
            registry_loaded: AtomicBool::new(false),
            consuming: AtomicBool::new(false),
            consumer_down: Mutex::new("not connected to the broker yet".into()),
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

    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    pub fn readiness(&self) -> Readiness {
        let consuming = self.is_consuming();
        let loaded = self.registry_loaded.load(Ordering::Relaxed);
        Readiness {
            ready: consuming && loaded,
            consumer: if consuming {
                "consuming".into()
            } else {
                self.consumer_down
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            },
            registry: if loaded { "loaded" } else { "not loaded" }.into(),
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
                registry: "not loaded".into()
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
    fn alive_while_the_main_loop_beats() {
        let health = Health::default();
        health.beat();
        assert!(health.alive(Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!health.alive(Duration::from_millis(10)));
    }
}
