//! Absences from outside the registry file: those the référents declare
//! themselves, on their absence page. They count as the registry's own for
//! one resolution ([`Registry::resolve_with`], [`Registry::escalation_tiers_with`]),
//! and can choose which of the référent's deputies stands in. This module
//! holds them and answers "who stands in on that day"; it never reads
//! them from anywhere (whoever calls hands them in: the registry stays
//! a pure function of its file and of what it is given).
//!
//! Unlike the registry's absences, nobody checked them against the rest
//! of the registry before they count: a declared absence on a day when no
//! deputy and no fallback référent is present leaves the référent
//! receiving its alerts ([`StandIn::Nobody`]), so that an absence never
//! makes an alert unroutable.

use std::collections::HashMap;

use time::Date;

use super::{NetworkIndex, Referent, ReferentId, ReferentIndex, Registry};
use crate::availability::Absence;

/// One absence declared outside the registry file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraAbsence {
    /// Who is away.
    pub referent: ReferentId,
    pub absence: Absence,
    /// The deputy it chose to stand in, one of its deputies in the
    /// registry; `None`: its present deputies, as for the registry's
    /// absences. A choice that is no longer one of its deputies (the
    /// registry changed since) counts as no choice.
    pub deputy: Option<ReferentId>,
}

/// The absences declared outside the registry file, by référent; empty by
/// default (the registry's absences alone).
#[derive(Debug, Clone, Default)]
pub struct ExtraAbsences {
    by_referent: HashMap<ReferentId, Vec<(Absence, Option<ReferentId>)>>,
}

impl ExtraAbsences {
    pub fn new(absences: impl IntoIterator<Item = ExtraAbsence>) -> Self {
        let mut by_referent: HashMap<ReferentId, Vec<(Absence, Option<ReferentId>)>> =
            HashMap::new();
        for ExtraAbsence {
            referent,
            absence,
            deputy,
        } in absences
        {
            by_referent
                .entry(referent)
                .or_default()
                .push((absence, deputy));
        }
        Self { by_referent }
    }

    pub fn is_empty(&self) -> bool {
        self.by_referent.is_empty()
    }

    /// How many absences, for the logs.
    pub fn len(&self) -> usize {
        self.by_referent.values().map(Vec::len).sum()
    }

    /// Whether `referent` declared itself away on `date`, and the deputy
    /// it chose then (the first absence covering that day that names one).
    fn on(&self, referent: &ReferentId, date: Date) -> Option<Option<&ReferentId>> {
        let covering = self
            .by_referent
            .get(referent)?
            .iter()
            .filter(|(absence, _)| absence.covers(date));
        let mut away = false;
        for (_, deputy) in covering {
            away = true;
            if deputy.is_some() {
                return Some(deputy.as_ref());
            }
        }
        away.then_some(None)
    }
}

/// Who receives a référent's alerts on a given day.
#[derive(Debug, Clone)]
pub enum StandIn<'r> {
    /// It is there: itself.
    Present,
    /// It is away: its chosen deputy if present, else its present deputies.
    Deputies(Vec<&'r Referent>),
    /// It is away and no deputy of its is present: its network's present
    /// fallback référents.
    Fallback(Vec<&'r Referent>),
    /// It is away, and nobody of its network can stand in: it keeps
    /// receiving its alerts (a declared absence never makes an alert
    /// unroutable; the registry's own are checked never to come to this).
    Nobody,
}

/// One day's view of who is away: the registry's absences and the extra
/// ones.
pub(super) struct Day<'a> {
    registry: &'a Registry,
    date: Date,
    extra: &'a ExtraAbsences,
}

impl<'a> Day<'a> {
    pub(super) fn new(registry: &'a Registry, date: Date, extra: &'a ExtraAbsences) -> Self {
        Self {
            registry,
            date,
            extra,
        }
    }

    /// Nobody is away that day, nor ever: resolution can skip the checks.
    pub(super) fn nobody_ever_away(&self) -> bool {
        self.registry.availability.is_empty() && self.extra.is_empty()
    }

    pub(super) fn absent(&self, index: ReferentIndex) -> bool {
        let listed = self
            .registry
            .availability
            .get(&index)
            .is_some_and(|a| a.absences.iter().any(|absence| absence.covers(self.date)));
        listed || self.declared(index).is_some()
    }

    /// The extra absence of `index` that day, with its chosen deputy.
    fn declared(&self, index: ReferentIndex) -> Option<Option<&ReferentId>> {
        if self.extra.is_empty() {
            return None;
        }
        let referent = &self.registry.referents[index as usize];
        self.extra.on(referent.id(), self.date)
    }

    /// The deputies of `index` in the registry, in the order it lists them.
    pub(super) fn deputies(&self, index: ReferentIndex) -> &'a [ReferentIndex] {
        self.registry
            .availability
            .get(&index)
            .map(|a| a.deputies.as_slice())
            .unwrap_or_default()
    }

    /// Who receives the alerts of `index`, of network `network`, that day
    /// (by index; see [`StandIn`]).
    pub(super) fn stand_in(&self, network: NetworkIndex, index: ReferentIndex) -> StandInIndexes {
        if !self.absent(index) {
            return StandInIndexes::Present;
        }
        let deputies = self.deputies(index);
        let chosen = self.declared(index).flatten().and_then(|chosen| {
            deputies.iter().copied().find(|&deputy| {
                self.registry.referents[deputy as usize].id() == chosen && !self.absent(deputy)
            })
        });
        if let Some(chosen) = chosen {
            return StandInIndexes::Deputies(vec![chosen]);
        }
        let present: Vec<ReferentIndex> = deputies
            .iter()
            .copied()
            .filter(|&deputy| !self.absent(deputy))
            .collect();
        if !present.is_empty() {
            return StandInIndexes::Deputies(present);
        }
        let fallback: Vec<ReferentIndex> = self.registry.fallback[usize::from(network)]
            .iter()
            .copied()
            .filter(|&f| f != index && !self.absent(f))
            .collect();
        if fallback.is_empty() {
            StandInIndexes::Nobody
        } else {
            StandInIndexes::Fallback(fallback)
        }
    }
}

/// [`StandIn`], by index in the registry.
pub(super) enum StandInIndexes {
    Present,
    Deputies(Vec<ReferentIndex>),
    Fallback(Vec<ReferentIndex>),
    Nobody,
}

impl Registry {
    /// The référent of id `id`, if the registry has one.
    pub fn referent(&self, id: &str) -> Option<&Referent> {
        self.referents.iter().find(|r| r.id().as_str() == id)
    }

    /// The deputies the registry lists for `referent`, in its order.
    pub fn deputies_of(&self, referent: &Referent) -> Vec<&Referent> {
        self.index_of(referent)
            .and_then(|index| self.availability.get(&index))
            .map(|a| {
                a.deputies
                    .iter()
                    .map(|&d| &self.referents[d as usize])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The absences the registry lists for `referent`, in its order.
    pub fn absences_of(&self, referent: &Referent) -> &[Absence] {
        self.index_of(referent)
            .and_then(|index| self.availability.get(&index))
            .map(|a| a.absences.as_slice())
            .unwrap_or_default()
    }

    /// Who receives the alerts of `referent` on `date`, with the
    /// registry's absences and `extra`'s.
    pub fn stand_in(&self, referent: &Referent, date: Date, extra: &ExtraAbsences) -> StandIn<'_> {
        let Some(index) = self.index_of(referent) else {
            return StandIn::Present;
        };
        let network = self
            .networks
            .iter()
            .position(|n| n.as_str() == referent.network())
            .and_then(|n| NetworkIndex::try_from(n).ok())
            .unwrap_or_default();
        let referents = |indexes: Vec<ReferentIndex>| {
            indexes
                .into_iter()
                .map(|i| &self.referents[i as usize])
                .collect()
        };
        match Day::new(self, date, extra).stand_in(network, index) {
            StandInIndexes::Present => StandIn::Present,
            StandInIndexes::Deputies(deputies) => StandIn::Deputies(referents(deputies)),
            StandInIndexes::Fallback(fallback) => StandIn::Fallback(referents(fallback)),
            StandInIndexes::Nobody => StandIn::Nobody,
        }
    }

    fn index_of(&self, referent: &Referent) -> Option<ReferentIndex> {
        self.position(referent)
            .and_then(|i| ReferentIndex::try_from(i).ok())
    }
}
