//! When the offices are open, and so when an escalation step falls: a
//! network (`[[network]]`) or a référent (overriding its network) may
//! declare opening hours, and a time zone (by default the zone of the
//! alert's département: La Réunion's offices keep La Réunion's time). An
//! escalation wait then counts open time only, on the office's days,
//! outside the public holidays of the alert's département (`calendar`):
//! "2h" is two open hours, and a Friday-evening alert's steps fall on
//! Monday. Without hours, a wait counts wall-clock time, as it always did.
//! Emails themselves go out at once, day and night: only the steps wait.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use time::OffsetDateTime;

use super::raw::RawNetwork;
use super::{NetworkIndex, Referent, ReferentIndex, Registry};
use crate::alert::Kind;
use crate::calendar::{Calendar, Hours, Zone};
use crate::territory::Territory;

/// The waits of the broker's timers that carry a step due at a time no
/// route's wait gives (a step that waits for Monday): a timer goes, hop
/// after hop, through the longest of these not past the step's due time,
/// so that the broker keeps a handful of queues, not one per instant.
pub const HOPS: [Duration; 7] = [
    Duration::from_secs(24 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(3600),
    Duration::from_secs(600),
    Duration::from_secs(60),
    Duration::from_secs(10),
    Duration::from_secs(1),
];

/// The next hop towards a step due in `remaining`: the longest of
/// [`HOPS`] not past it (at least a second).
pub fn hop(remaining: Duration) -> Duration {
    HOPS.into_iter()
        .find(|hop| *hop <= remaining)
        .unwrap_or(Duration::from_secs(1))
}

/// An office's declared opening: its hours, and its zone when it names one.
#[derive(Debug, Clone)]
pub(super) struct Opening {
    hours: Hours,
    zone: Option<Zone>,
}

/// The declared openings of the registry's networks and référents.
#[derive(Debug, Clone, Default)]
pub(super) struct Openings {
    pub(super) networks: HashMap<NetworkIndex, Opening>,
    pub(super) referents: HashMap<ReferentIndex, Opening>,
}

/// Reads `hours` and `time_zone` as an entry wrote them; every error goes
/// to `errors`, prefixed with `at`.
pub(super) fn opening(
    at: &dyn std::fmt::Display,
    hours: Option<&BTreeMap<String, String>>,
    time_zone: Option<&str>,
    errors: &mut Vec<String>,
) -> Option<Opening> {
    let zone = time_zone.and_then(|name| {
        Zone::parse(name)
            .map_err(|error| errors.push(format!("{at}: time_zone: {error}")))
            .ok()
    });
    let Some(hours) = hours else {
        if time_zone.is_some() {
            errors.push(format!(
                "{at}: time_zone is given without hours: it says in which zone the hours are"
            ));
        }
        return None;
    };
    match Hours::parse(
        hours
            .iter()
            .map(|(day, ranges)| (day.as_str(), ranges.as_str())),
    ) {
        Ok(hours) => Some(Opening { hours, zone }),
        Err(problems) => {
            for problem in problems {
                errors.push(format!("{at}: hours: {problem}"));
            }
            None
        }
    }
}

/// The `[[network]]` entries: each names a network some référent is of,
/// once.
pub(super) fn networks(
    raws: &[RawNetwork],
    known: &[std::sync::Arc<str>],
    errors: &mut Vec<String>,
) -> HashMap<NetworkIndex, Opening> {
    let mut openings = HashMap::new();
    for (position, raw) in raws.iter().enumerate() {
        let at = format!("network #{} ({:?})", position + 1, raw.name);
        let Some(index) = known.iter().position(|n| **n == *raw.name) else {
            errors.push(format!("{at}: no référent is of this network"));
            continue;
        };
        let index = index as NetworkIndex;
        if openings.contains_key(&index) {
            errors.push(format!("{at}: the network is described twice"));
            continue;
        }
        if let Some(opening) = opening(&at, raw.hours.as_ref(), raw.time_zone.as_deref(), errors) {
            openings.insert(index, opening);
        }
    }
    openings
}

impl Registry {
    /// When a step of escalation of an alert of `kind` about `territory`,
    /// counted from `from`, falls, if it waits `wait`: for each network the
    /// alert resolves to, `wait` of its offices' open time (a référent's
    /// own hours, else its network's; with several référents, the first of
    /// them to have had the wait open), and the latest of the networks
    /// (none is asked about an alert before it had the wait open). Without
    /// declared hours, `from + wait`.
    pub fn step_due(
        &self,
        kind: &Kind,
        territory: Territory,
        from: OffsetDateTime,
        wait: Duration,
    ) -> OffsetDateTime {
        let wall = from + wait;
        if self.openings.networks.is_empty() && self.openings.referents.is_empty() {
            return wall;
        }
        let Ok(resolution) = self.resolve_at(kind, territory, from) else {
            return wall;
        };
        let departement = territory.departement();
        let start = to_timestamp(from);
        let due_with = |opening: &Opening| {
            let calendar = Calendar {
                hours: opening.hours.clone(),
                zone: opening
                    .zone
                    .unwrap_or_else(|| Zone::of_departement(departement)),
                departement,
            };
            from_timestamp(calendar.after_open_time(start, wait)).unwrap_or(wall)
        };
        resolution
            .matched
            .iter()
            .map(|found| {
                let network = self.network_index(found.network);
                let of_network = network.and_then(|n| self.openings.networks.get(&n));
                found
                    .referents
                    .iter()
                    .map(|referent| {
                        let own = self
                            .position(referent)
                            .and_then(|i| self.openings.referents.get(&(i as ReferentIndex)));
                        own.or(of_network).map_or(wall, due_with)
                    })
                    .min()
                    .unwrap_or(wall)
            })
            .max()
            .unwrap_or(wall)
    }

    /// The zone whose time an email about `territory` to `referent` gives:
    /// the one its hours name (its own, else its network's), else the
    /// territory's.
    pub fn zone_of(&self, referent: &Referent, territory: Territory) -> Zone {
        let own = self
            .position(referent)
            .and_then(|i| self.openings.referents.get(&(i as ReferentIndex)));
        let of_network = self
            .network_index(referent.network())
            .and_then(|n| self.openings.networks.get(&n));
        own.or(of_network)
            .and_then(|opening| opening.zone)
            .unwrap_or_else(|| Zone::of_departement(territory.departement()))
    }

    /// Whether any network or référent declares opening hours (then some
    /// steps wait in the broker's [`HOPS`]).
    pub fn has_opening_hours(&self) -> bool {
        !self.openings.networks.is_empty() || !self.openings.referents.is_empty()
    }

    pub(super) fn network_index(&self, name: &str) -> Option<NetworkIndex> {
        self.networks
            .iter()
            .position(|n| n == name)
            .map(|n| n as NetworkIndex)
    }
}

fn to_timestamp(at: OffsetDateTime) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(at.unix_timestamp_nanos())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn from_timestamp(at: jiff::Timestamp) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond()).ok()
}
