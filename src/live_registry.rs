//! The registry in force: one value that every alert, the acknowledgement
//! pages and the metrics read, and that a reload (SIGHUP) swaps whole.
//!
//! An alert keeps the registry it started with until it is done, and a
//! reload replaces the registry only with a file that is valid: a registry
//! half read, or one that failed its checks, is never in force. This module
//! never decides anything about an alert; it only says which registry is
//! the one to decide with.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::memory;
use crate::registry::Registry;
use crate::telemetry::events::Events;

/// The registry in force. Swapped whole on reload; an alert keeps the
/// registry it started with until it is done.
pub type SharedRegistry = Arc<ArcSwap<Registry>>;

/// `registry`, in force until the first reload.
pub fn shared(registry: Registry) -> SharedRegistry {
    Arc::new(ArcSwap::from_pointee(registry))
}

/// Replaces the registry with the file's current content if, and only if,
/// it is valid; alerts in flight finish with the registry they started with.
pub fn reload(registry: &SharedRegistry, path: &Path, events: &Events) {
    let geography = registry.load().geography().clone();
    match Registry::load(path, &geography) {
        Ok(new) => {
            events.registry_loaded(&new, path, true);
            registry.store(Arc::new(new));
            // What alerts in flight still hold of the old registry is given
            // back at a later reload.
            memory::return_freed();
        }
        Err(error) => events.registry_refused(&error),
    }
}
