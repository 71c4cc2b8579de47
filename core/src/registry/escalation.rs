//! Escalation: how long an alert waits for an acknowledgement before each
//! step (a route's `escalate_after`), and whom it climbs to when nobody in a
//! network acknowledges it (the present deputies, then the network's present
//! fallback référents). It reads a built registry; the clock and the steps
//! themselves are the daemon's.

use std::time::Duration;

use time::OffsetDateTime;

use super::absences::{Day, ExtraAbsences};
use super::{ANY_KIND, Referent, ReferentIndex, Registry, Unroutable};
use crate::alert::{Kind, Priority};
use crate::availability::paris_date;
use crate::territory::Territory;

/// A route's `escalate_after`: per priority, how long nobody in a network
/// may leave an alert unacknowledged before the next step (deputies, then
/// fallback référents, then `unacknowledged`). `None`: no escalation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EscalateAfter {
    pub urgent: Option<Duration>,
    pub normal: Option<Duration>,
}

impl EscalateAfter {
    pub fn get(self, priority: Priority) -> Option<Duration> {
        match priority {
            Priority::Urgent => self.urgent,
            Priority::Normal => self.normal,
        }
    }
}

/// One network an alert went to, and who it would climb to if nobody in
/// it acknowledges: the present deputies of its référents, then its
/// present fallback référents.
#[derive(Debug)]
pub struct EscalationTiers<'r> {
    pub network: &'r str,
    pub deputies: Vec<&'r Referent>,
    pub fallback: Vec<&'r Referent>,
}

impl Registry {
    /// How long an alert of `kind` and `priority` waits for an
    /// acknowledgement before each step of escalation: its route's
    /// `escalate_after`, else the `*` route's; `None`: it does not escalate.
    pub fn escalate_after(&self, kind: &Kind, priority: Priority) -> Option<Duration> {
        let route = if self.routes.contains_key(kind.as_str()) {
            kind.as_str()
        } else {
            ANY_KIND
        };
        self.escalations
            .get(route)
            .and_then(|escalate| escalate.get(priority))
    }

    /// The `escalate_after` of the route of `kind` as written (`*` for the
    /// route of every kind), if it has one.
    pub fn route_escalation(&self, kind: &str) -> Option<EscalateAfter> {
        self.escalations.get(kind).copied()
    }

    /// Where an alert of `kind` about `territory` would climb, per network
    /// it resolves to at `at`: the present deputies of its référents (not
    /// themselves among them), then the network's present fallback
    /// référents. Either may be empty.
    ///
    /// # Errors
    /// As [`Registry::resolve_at`].
    pub fn escalation_tiers(
        &self,
        kind: &Kind,
        territory: Territory,
        at: OffsetDateTime,
    ) -> Result<Vec<EscalationTiers<'_>>, Unroutable> {
        self.escalation_tiers_with(kind, territory, at, &ExtraAbsences::default())
    }

    /// As [`Registry::escalation_tiers`], with `extra`'s absences (those
    /// the référents declared themselves) counted beside the registry's.
    ///
    /// # Errors
    /// As [`Registry::resolve_at`].
    pub fn escalation_tiers_with(
        &self,
        kind: &Kind,
        territory: Territory,
        at: OffsetDateTime,
        extra: &ExtraAbsences,
    ) -> Result<Vec<EscalationTiers<'_>>, Unroutable> {
        let day = Day::new(self, paris_date(at), extra);
        let resolution = self.resolve_with(kind, territory, at, extra)?;
        let index_of = |referent: &Referent| self.position(referent).map(|i| i as ReferentIndex);
        let tiers = resolution
            .matched
            .iter()
            .map(|found| {
                let first: Vec<ReferentIndex> =
                    found.referents.iter().filter_map(|r| index_of(r)).collect();
                let mut deputies: Vec<ReferentIndex> = Vec::new();
                for &index in &first {
                    for &deputy in day.deputies(index) {
                        if !day.absent(deputy)
                            && !first.contains(&deputy)
                            && !deputies.contains(&deputy)
                        {
                            deputies.push(deputy);
                        }
                    }
                }
                let network = self
                    .networks
                    .iter()
                    .position(|n| n == found.network)
                    .unwrap_or_default();
                let fallback = self.fallback[network]
                    .iter()
                    .filter(|&&f| !day.absent(f) && !first.contains(&f))
                    .map(|&f| &self.referents[f as usize])
                    .collect();
                EscalationTiers {
                    network: found.network,
                    deputies: deputies
                        .into_iter()
                        .map(|d| &self.referents[d as usize])
                        .collect(),
                    fallback,
                }
            })
            .collect();
        Ok(tiers)
    }
}
