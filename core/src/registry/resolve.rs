//! Resolution: which référents an alert of a kind about a territory goes
//! to, network by network, at the most specific level that has any (the
//! rule is in `registry`'s header), with the absences of the day. It reads
//! a built registry and never changes it.

use thiserror::Error;
use time::{Date, OffsetDateTime};

use super::absences::{Day, ExtraAbsences, StandInIndexes};
use super::{NetworkIndex, Referent, ReferentIndex, Registry};
use crate::alert::Kind;
use crate::availability::paris_date;
use crate::geography::Location;
use crate::territory::{Commune, Territory};

/// Which level of the rule a network's référents were found at, most
/// specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Arrondissement,
    Commune,
    Epci,
    Departement,
    Region,
    Fallback,
}

impl Level {
    pub const ALL: [Self; 6] = [
        Self::Arrondissement,
        Self::Commune,
        Self::Epci,
        Self::Departement,
        Self::Region,
        Self::Fallback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Arrondissement => "arrondissement",
            Self::Commune => "commune",
            Self::Epci => "epci",
            Self::Departement => "departement",
            Self::Region => "region",
            Self::Fallback => "fallback",
        }
    }
}

/// The référents of one network that an alert resolves to.
#[derive(Debug)]
pub struct NetworkMatch<'r> {
    pub network: &'r str,
    pub level: Level,
    /// Who receives it: the référents found, or, for one who is absent,
    /// its present deputies, else the network's present fallback référents.
    pub referents: Vec<&'r Referent>,
    /// For a référent standing in for an absent one: (who stands in, for
    /// whom).
    pub standing_in: Vec<(&'r Referent, &'r Referent)>,
}

/// Who an alert goes to. `matched` is never empty; `unmatched` lists the
/// networks the alert routes to where no référent covers its territory (the
/// alert is then delivered to the others and dead-lettered as unroutable for
/// these, so that nothing is silently dropped).
#[derive(Debug)]
pub struct Resolution<'r> {
    pub matched: Vec<NetworkMatch<'r>>,
    pub unmatched: Vec<&'r str>,
}

impl<'r> Resolution<'r> {
    /// Every référent, in registry order within each network.
    pub fn referents(&self) -> impl Iterator<Item = &'r Referent> + '_ {
        self.matched
            .iter()
            .flat_map(|m| m.referents.iter().copied())
    }

    /// The absent référent `referent` receives the alert for, if any.
    pub fn on_behalf_of(&self, referent: &Referent) -> Option<&'r Referent> {
        self.matched
            .iter()
            .flat_map(|m| m.standing_in.iter())
            .find(|(deputy, _)| deputy.id() == referent.id())
            .map(|(_, absent)| *absent)
    }

    /// Why the `unmatched` networks have nobody, or `None` if all matched.
    pub fn unmatched_error(&self, territory: Territory) -> Option<Unroutable> {
        (!self.unmatched.is_empty()).then(|| Unroutable::NoReferent {
            networks: self.unmatched.iter().map(|n| (*n).to_owned()).collect(),
            territory,
        })
    }
}

/// Why an alert has nobody to go to.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unroutable {
    #[error("no route for kind `{0}` in the registry")]
    NoRoute(String),
    #[error(
        "no référent of network(s) {} for {territory} (département {}), and no fallback",
        networks.join(", "),
        territory.departement()
    )]
    NoReferent {
        networks: Vec<String>,
        territory: Territory,
    },
}

impl Registry {
    /// Who receives an alert of `kind` about `territory`.
    ///
    /// # Errors
    /// [`Unroutable`] when the kind has no route, or when no network it
    /// routes to has a référent for the territory.
    pub fn resolve(&self, kind: &Kind, territory: Territory) -> Result<Resolution<'_>, Unroutable> {
        self.resolve_at(kind, territory, OffsetDateTime::now_utc())
    }

    /// Who receives an alert of `kind` about `territory` at the instant
    /// `at`: as [`Registry::resolve`], with the absences of that day (in
    /// Paris).
    ///
    /// # Errors
    /// As [`Registry::resolve`].
    pub fn resolve_at(
        &self,
        kind: &Kind,
        territory: Territory,
        at: OffsetDateTime,
    ) -> Result<Resolution<'_>, Unroutable> {
        self.resolve_with(kind, territory, at, &ExtraAbsences::default())
    }

    /// As [`Registry::resolve_at`], with `extra`'s absences (those the
    /// référents declared themselves) counted beside the registry's.
    ///
    /// # Errors
    /// As [`Registry::resolve`].
    pub fn resolve_with(
        &self,
        kind: &Kind,
        territory: Territory,
        at: OffsetDateTime,
        extra: &ExtraAbsences,
    ) -> Result<Resolution<'_>, Unroutable> {
        let day = Day::new(self, paris_date(at), extra);
        let routed = self.routes.get(kind.as_str());
        if routed.is_none() && self.any_kind.is_empty() {
            return Err(Unroutable::NoRoute(kind.as_str().to_owned()));
        }
        let location = self.geography.location(territory);
        let networks = routed.into_iter().flatten().chain(&self.any_kind);
        let mut seen: Vec<NetworkIndex> = Vec::with_capacity(4);
        let mut resolution = Resolution {
            matched: Vec::with_capacity(4),
            unmatched: Vec::new(),
        };
        for &network in networks {
            if seen.contains(&network) {
                continue;
            }
            seen.push(network);
            let name = self.networks[usize::from(network)].as_str();
            let found = self
                .match_network(network, &location)
                .map(|(level, indexes)| (level, self.present(network, indexes, &day)))
                .filter(|(_, (referents, _))| !referents.is_empty());
            match found {
                Some((level, (referents, standing_in))) => resolution.matched.push(NetworkMatch {
                    network: name,
                    level,
                    referents,
                    standing_in,
                }),
                None => resolution.unmatched.push(name),
            }
        }
        if resolution.matched.is_empty() {
            return Err(Unroutable::NoReferent {
                networks: resolution
                    .unmatched
                    .iter()
                    .map(|n| (*n).to_owned())
                    .collect(),
                territory,
            });
        }
        Ok(resolution)
    }

    /// Who receives for `found` on `day`: each present référent, and for
    /// each absent one its chosen deputy, else its present deputies, else
    /// the network's present fallback référents, else itself; each once,
    /// in that order.
    #[allow(clippy::type_complexity)]
    fn present(
        &self,
        network: NetworkIndex,
        found: &[ReferentIndex],
        day: &Day<'_>,
    ) -> (Vec<&Referent>, Vec<(&Referent, &Referent)>) {
        let referent = |index: ReferentIndex| &self.referents[index as usize];
        if day.nobody_ever_away() {
            return (found.iter().map(|&i| referent(i)).collect(), Vec::new());
        }
        let mut chosen: Vec<ReferentIndex> = Vec::with_capacity(found.len());
        let mut standing_in = Vec::new();
        for &index in found {
            let instead = match day.stand_in(network, index) {
                StandInIndexes::Present | StandInIndexes::Nobody => {
                    if !chosen.contains(&index) {
                        chosen.push(index);
                    }
                    continue;
                }
                StandInIndexes::Deputies(instead) | StandInIndexes::Fallback(instead) => instead,
            };
            for deputy in instead {
                if !chosen.contains(&deputy) {
                    chosen.push(deputy);
                    standing_in.push((referent(deputy), referent(index)));
                }
            }
        }
        (chosen.into_iter().map(referent).collect(), standing_in)
    }

    pub(super) fn match_network(
        &self,
        network: NetworkIndex,
        location: &Location,
    ) -> Option<(Level, &[ReferentIndex])> {
        fn at(level: Level, found: Option<&[ReferentIndex]>) -> Option<(Level, &[ReferentIndex])> {
            found.map(|found| (level, found))
        }
        let commune = |commune: Option<Commune>| {
            commune.and_then(|commune| self.by_commune.get(&(network, commune)))
        };
        at(Level::Arrondissement, commune(location.arrondissement))
            .or_else(|| at(Level::Commune, commune(location.commune)))
            .or_else(|| {
                let epci = location
                    .epci
                    .and_then(|epci| self.by_epci.get(&(network, epci)));
                at(Level::Epci, epci)
            })
            .or_else(|| {
                let departement = self.by_departement.get(&(network, location.departement));
                at(Level::Departement, departement)
            })
            .or_else(|| {
                let region = location
                    .region
                    .and_then(|region| self.by_region.get(&(network, region)));
                at(Level::Region, region)
            })
            .or_else(|| {
                let fallback = &self.fallback[usize::from(network)];
                (!fallback.is_empty()).then_some((Level::Fallback, fallback.as_slice()))
            })
    }

    /// Which level of each network would serve `location` for the alerts
    /// of `date`, `None` where none would (for `relais coverage`). With the
    /// absences of that day (the registry's and `extra`'s): where every
    /// référent found is away and only fallback référents stand in, the
    /// level is [`Level::Fallback`].
    pub fn level_per_network_on(
        &self,
        location: &Location,
        date: Date,
        extra: &ExtraAbsences,
    ) -> Vec<(&str, Option<Level>)> {
        let day = Day::new(self, date, extra);
        (0..self.networks.len())
            .map(|index| {
                let network = index as NetworkIndex;
                let level = self.match_network(network, location).map(|(level, found)| {
                    let by_fallback = level != Level::Fallback
                        && !day.nobody_ever_away()
                        && found.iter().all(|&referent| {
                            matches!(day.stand_in(network, referent), StandInIndexes::Fallback(_))
                        });
                    if by_fallback { Level::Fallback } else { level }
                });
                (self.networks[index].as_str(), level)
            })
            .collect()
    }
}
