//! The registry: who the référents are, and which of them an alert goes to.
//!
//! It is loaded from a TOML file, validated whole (every error is reported at
//! once, and a registry with any error is refused), then never changed: a
//! reload builds a new one and swaps it in whole. Resolution is a few hash
//! look-ups, so it costs the same for one commune or for all of France.
//!
//! The rule: for each network the alert's kind routes to, every référent at
//! the most specific level that matches receives it: the arrondissement
//! municipal, else the commune, else its EPCI, else the département, else
//! the région, else the network's fallback référents. Every code is checked
//! against the official geography (`geography`), which also says where a
//! commune lies.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::Address;
use lettre::message::Mailbox;
use serde::Deserialize;
use thiserror::Error;

use time::{Date, OffsetDateTime};

use crate::alert::{Kind, Priority};
use crate::availability::{Absence, paris_date};
use crate::geography::{Epci, Geography, Location, Region};
use crate::publisher::{Publishers, RawPublisher};
use crate::territory::{Commune, Departement, Territory};

/// A route's kind that matches every kind.
const ANY_KIND: &str = "*";

/// Shortest and longest wait of an escalation step: a minute would do in
/// practice, a second lets the tests walk the chain; the broker's queue
/// TTL and the acknowledgement link's life bound the other end.
const ESCALATION_MIN: Duration = Duration::from_secs(1);
const ESCALATION_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a registry was refused.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("cannot read the registry {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the registry {path} is not valid TOML for a registry: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error(
        "the registry {path} has {} error(s):\n  - {}",
        errors.len(),
        errors.join("\n  - ")
    )]
    Invalid { path: PathBuf, errors: Vec<String> },
}

/// A référent's identity in the registry, e.g. `ccas-paris-13`: 1 to 64
/// characters of `A-Za-z0-9._-`. It travels in the `X-Relais-Referent`
/// header and the Message-ID, and names the référent in logs and the audit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReferentId(String);

impl ReferentId {
    /// # Errors
    /// A description of the rule broken.
    pub fn parse(id: &str) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
            return Err(format!(
                "id {id:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
            ));
        }
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReferentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ReferentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A person named by an office to receive alerts.
#[derive(Debug, Clone)]
pub struct Referent {
    id: ReferentId,
    /// Shared by every référent of the network.
    network: Arc<str>,
    organisation: Option<String>,
    mailbox: Mailbox,
}

impl Referent {
    pub fn id(&self) -> &ReferentId {
        &self.id
    }

    /// The network of offices the référent belongs to (`ccas`, `cpam`, …).
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The person's name, if the registry gives one.
    pub fn name(&self) -> Option<&str> {
        self.mailbox.name.as_deref()
    }

    /// The office, e.g. `CCAS de Paris 13e`.
    pub fn organisation(&self) -> Option<&str> {
        self.organisation.as_deref()
    }

    /// Name and address, as the email's `To`.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    pub fn email(&self) -> &Address {
        &self.mailbox.email
    }
}

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

/// Index of a network in `Registry::networks`.
type NetworkIndex = u16;
/// Index of a référent in `Registry::referents`.
type ReferentIndex = u32;

/// A validated, immutable registry.
#[derive(Debug)]
pub struct Registry {
    referents: Vec<Referent>,
    networks: Vec<String>,
    /// Kind → networks, in the order the route lists them.
    routes: HashMap<String, Vec<NetworkIndex>>,
    /// French label of each routed kind, for the email subject.
    labels: HashMap<String, String>,
    /// Networks of the `*` route, added to every kind's.
    any_kind: Vec<NetworkIndex>,
    /// Per routed kind (`*` included), how long its alerts wait for an
    /// acknowledgement before each step of escalation.
    escalations: HashMap<String, EscalateAfter>,
    /// Communes and arrondissements municipaux.
    by_commune: Index<(NetworkIndex, Commune)>,
    by_epci: Index<(NetworkIndex, Epci)>,
    by_departement: Index<(NetworkIndex, Departement)>,
    by_region: Index<(NetworkIndex, Region)>,
    /// Per network (by index), its fallback référents.
    fallback: Vec<Vec<ReferentIndex>>,
    /// The geography its codes were checked against, and which says where a
    /// territory lies.
    geography: Arc<Geography>,
    /// Deputies and absences, for the référents that have any.
    availability: HashMap<ReferentIndex, Availability>,
    /// Who may publish what; empty: anyone may publish anything.
    publishers: Publishers,
}

/// The registry file as written, before validation. Its strings borrow
/// from the file's text where they can: a national registry has some
/// 100,000 commune codes, which need not be copied one by one (and then
/// freed, scattered among the registry's own allocations) to be checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry<'a> {
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default, borrow)]
    referent: Vec<RawReferent<'a>>,
    #[serde(default)]
    publisher: Vec<RawPublisher>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    kind: String,
    networks: Vec<String>,
    /// How the kind is named to people, e.g. `Orientation sociale`.
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    escalate_after: Option<RawEscalateAfter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalateAfter {
    #[serde(default)]
    urgent: Option<String>,
    #[serde(default)]
    normal: Option<String>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReferent<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    network: Text<'a>,
    #[serde(default, borrow)]
    name: Option<Text<'a>>,
    #[serde(default, borrow)]
    organisation: Option<Text<'a>>,
    #[serde(borrow)]
    email: Text<'a>,
    #[serde(default, borrow)]
    communes: Vec<Text<'a>>,
    #[serde(default, borrow)]
    epcis: Vec<Text<'a>>,
    #[serde(default, borrow)]
    departements: Vec<Text<'a>>,
    #[serde(default, borrow)]
    regions: Vec<Text<'a>>,
    #[serde(default)]
    fallback: bool,
    #[serde(default, borrow)]
    deputies: Vec<Text<'a>>,
    #[serde(default)]
    absences: Vec<RawAbsence>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAbsence {
    from: String,
    to: String,
}

/// Who stands in for a référent, and when it is away.
#[derive(Debug, Default)]
struct Availability {
    /// Référents of the same network, in registry order of the list.
    deputies: Vec<ReferentIndex>,
    absences: Vec<Absence>,
}

/// A string of the registry file: borrowed from the file's text, or owned
/// when the file wrote it with escapes. (serde borrows a bare `Cow<str>`
/// field, but not one inside a `Vec` or an `Option`.)
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// Where an error is, e.g. `referent #12 ("ccas-paris")`; formatted only
/// when there is an error to report.
struct At<'r>(usize, &'r str);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "referent #{} ({:?})", self.0, self.1)
    }
}

impl Registry {
    /// Reads and validates a registry file: TOML, or JSON with the same
    /// keys when its name ends in `.json` (for large registries generated
    /// by a tool: JSON parses faster).
    ///
    /// # Errors
    /// [`RegistryError`]: unreadable file, syntax or shape error, or the
    /// complete list of validation errors.
    pub fn load(path: &Path, geography: &Arc<Geography>) -> Result<Self, RegistryError> {
        let read = |source| RegistryError::Read {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(read)?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Self::from_text(&text, json, path, geography)
    }

    /// Validates a registry given as TOML text.
    ///
    /// # Errors
    /// As [`Registry::load`], with an empty path.
    pub fn from_toml(text: &str, geography: &Arc<Geography>) -> Result<Self, RegistryError> {
        Self::from_text(text, false, Path::new(""), geography)
    }

    /// Validates a registry given as JSON text.
    ///
    /// # Errors
    /// As [`Registry::load`], with an empty path.
    pub fn from_json(text: &str, geography: &Arc<Geography>) -> Result<Self, RegistryError> {
        Self::from_text(text, true, Path::new(""), geography)
    }

    fn from_text(
        text: &str,
        json: bool,
        path: &Path,
        geography: &Arc<Geography>,
    ) -> Result<Self, RegistryError> {
        let syntax = |message: String| RegistryError::Syntax {
            path: path.to_owned(),
            message,
        };
        let raw: RawRegistry = if json {
            serde_json::from_str(text).map_err(|error| syntax(error.to_string()))?
        } else {
            toml::from_str(text).map_err(|error| syntax(error.to_string()))?
        };
        Builder::new(geography.clone())
            .build(raw)
            .map_err(|errors| RegistryError::Invalid {
                path: path.to_owned(),
                errors,
            })
    }

    /// The geography the registry was checked against.
    pub fn geography(&self) -> &Arc<Geography> {
        &self.geography
    }

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
    /// As [`Registry::resolve`]; a network whose every référent for the
    /// territory, deputy and fallback is absent counts as unmatched.
    pub fn resolve_at(
        &self,
        kind: &Kind,
        territory: Territory,
        at: OffsetDateTime,
    ) -> Result<Resolution<'_>, Unroutable> {
        let date = paris_date(at);
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
                .map(|(level, indexes)| (level, self.present(network, indexes, date)))
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

    /// Who receives for `found` on `date`: each present référent, and for
    /// each absent one its present deputies, else the network's present
    /// fallback référents; each once, in that order.
    #[allow(clippy::type_complexity)]
    fn present(
        &self,
        network: NetworkIndex,
        found: &[ReferentIndex],
        date: Date,
    ) -> (Vec<&Referent>, Vec<(&Referent, &Referent)>) {
        let referent = |index: ReferentIndex| &self.referents[index as usize];
        if self.availability.is_empty() {
            return (found.iter().map(|&i| referent(i)).collect(), Vec::new());
        }
        let absent = |index: &ReferentIndex| {
            self.availability
                .get(index)
                .is_some_and(|a| a.absences.iter().any(|absence| absence.covers(date)))
        };
        let mut chosen: Vec<ReferentIndex> = Vec::with_capacity(found.len());
        let mut standing_in = Vec::new();
        for index in found {
            if !absent(index) {
                if !chosen.contains(index) {
                    chosen.push(*index);
                }
                continue;
            }
            let deputies = self
                .availability
                .get(index)
                .map(|a| a.deputies.as_slice())
                .unwrap_or_default();
            let mut instead: Vec<ReferentIndex> =
                deputies.iter().filter(|d| !absent(d)).copied().collect();
            if instead.is_empty() {
                instead = self.fallback[usize::from(network)]
                    .iter()
                    .filter(|f| !absent(f) && *f != index)
                    .copied()
                    .collect();
            }
            for deputy in instead {
                if !chosen.contains(&deputy) {
                    chosen.push(deputy);
                    standing_in.push((referent(deputy), referent(*index)));
                }
            }
        }
        (chosen.into_iter().map(referent).collect(), standing_in)
    }

    fn match_network(
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

    /// Which level of each network would serve `location`, `None` where
    /// none would (for `relais coverage`).
    pub fn level_per_network(&self, location: &Location) -> Vec<(&str, Option<Level>)> {
        (0..self.networks.len())
            .map(|index| {
                let network = index as NetworkIndex;
                let level = self
                    .match_network(network, location)
                    .map(|(level, _)| level);
                (self.networks[index].as_str(), level)
            })
            .collect()
    }

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
        let date = paris_date(at);
        let resolution = self.resolve_at(kind, territory, at)?;
        let absent = |index: &ReferentIndex| {
            self.availability
                .get(index)
                .is_some_and(|a| a.absences.iter().any(|absence| absence.covers(date)))
        };
        let index_of = |referent: &Referent| self.position(referent).map(|i| i as ReferentIndex);
        let tiers = resolution
            .matched
            .iter()
            .map(|found| {
                let first: Vec<ReferentIndex> =
                    found.referents.iter().filter_map(|r| index_of(r)).collect();
                let mut deputies: Vec<ReferentIndex> = Vec::new();
                for index in &first {
                    let listed = self
                        .availability
                        .get(index)
                        .map(|a| a.deputies.as_slice())
                        .unwrap_or_default();
                    for deputy in listed {
                        if !absent(deputy) && !first.contains(deputy) && !deputies.contains(deputy)
                        {
                            deputies.push(*deputy);
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
                    .filter(|f| !absent(f) && !first.contains(f))
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

    /// How people call a kind: the route's `label`, else the kind with spaces.
    pub fn kind_label(&self, kind: &Kind) -> String {
        self.labels
            .get(kind.as_str())
            .cloned()
            .unwrap_or_else(|| kind.as_str().replace('_', " "))
    }

    pub fn referents(&self) -> &[Referent] {
        &self.referents
    }

    /// The place of `referent` in [`Registry::referents`], if it is one of
    /// this registry's (for counters kept per référent beside a registry).
    pub fn position(&self, referent: &Referent) -> Option<usize> {
        let range = self.referents.as_ptr_range();
        let at = std::ptr::from_ref(referent);
        range
            .contains(&at)
            .then(|| (at as usize - range.start as usize) / std::mem::size_of::<Referent>())
    }

    /// Who may publish what (see [`Publishers::authorize`]).
    pub fn publishers(&self) -> &Publishers {
        &self.publishers
    }

    /// What the registry covers, for `relais check` and the metrics.
    pub fn summary(&self) -> Summary {
        let mut networks: BTreeMap<String, NetworkSummary> = BTreeMap::new();
        for (index, name) in self.networks.iter().enumerate() {
            let index = index as NetworkIndex;
            let summary = networks.entry(name.clone()).or_default();
            summary.referents = self
                .referents
                .iter()
                .filter(|r| *r.network == **name)
                .count();
            summary.communes = self.by_commune.keys().filter(|(n, _)| *n == index).count();
            summary.epcis = self.by_epci.keys().filter(|(n, _)| *n == index).count();
            summary.departements = self
                .by_departement
                .keys()
                .filter(|(n, _)| *n == index)
                .count();
            summary.regions = self.by_region.keys().filter(|(n, _)| *n == index).count();
            summary.fallbacks = self.fallback[usize::from(index)].len();
        }
        let mut routes: Vec<(String, Vec<String>)> = self
            .routes
            .iter()
            .map(|(kind, networks)| (kind.clone(), self.network_names(networks)))
            .collect();
        if !self.any_kind.is_empty() {
            routes.push((ANY_KIND.to_owned(), self.network_names(&self.any_kind)));
        }
        routes.sort();
        Summary {
            referents: self.referents.len(),
            networks,
            routes,
        }
    }

    fn network_names(&self, networks: &[NetworkIndex]) -> Vec<String> {
        networks
            .iter()
            .map(|&n| self.networks[usize::from(n)].clone())
            .collect()
    }
}

/// Référents by territory code: each key points at a run of one flat list
/// of référent indexes (in registry order), so a national registry costs
/// two allocations, not one per commune.
#[derive(Debug)]
struct Index<K> {
    runs: HashMap<K, (u32, u32)>,
    referents: Vec<ReferentIndex>,
}

impl<K: std::hash::Hash + Eq + Ord + Copy> Index<K> {
    fn new(mut entries: Vec<(K, ReferentIndex)>) -> Self {
        // Stable: référents of one key keep their registry order.
        entries.sort_by_key(|(key, _)| *key);
        let mut runs = HashMap::with_capacity(entries.len());
        let mut referents = Vec::with_capacity(entries.len());
        for chunk in entries.chunk_by(|a, b| a.0 == b.0) {
            let start = referents.len() as u32;
            referents.extend(chunk.iter().map(|(_, referent)| *referent));
            runs.insert(chunk[0].0, (start, chunk.len() as u32));
        }
        runs.shrink_to_fit();
        Self { runs, referents }
    }

    fn get(&self, key: &K) -> Option<&[ReferentIndex]> {
        let &(start, len) = self.runs.get(key)?;
        self.referents.get(start as usize..(start + len) as usize)
    }

    fn keys(&self) -> impl Iterator<Item = &K> {
        self.runs.keys()
    }
}

/// What a registry covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub referents: usize,
    pub networks: BTreeMap<String, NetworkSummary>,
    /// Kind → networks, sorted by kind.
    pub routes: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSummary {
    pub referents: usize,
    /// Communes and arrondissements municipaux.
    pub communes: usize,
    pub epcis: usize,
    pub departements: usize,
    pub regions: usize,
    pub fallbacks: usize,
}

/// Validation state: every check pushes its error and goes on, so that the
/// operator sees every problem of the file at once.
struct Builder {
    errors: Vec<String>,
    /// Networks in order of first appearance; a network's index is its
    /// place here.
    networks: Vec<Arc<str>>,
    geography: Arc<Geography>,
}

impl Builder {
    fn new(geography: Arc<Geography>) -> Self {
        Self {
            errors: Vec::new(),
            networks: Vec::new(),
            geography,
        }
    }

    fn build(mut self, raw: RawRegistry) -> Result<Registry, Vec<String>> {
        let RawRegistry {
            route: raw_routes,
            referent: raw_referents,
            publisher: raw_publishers,
        } = raw;
        let mut referents = Vec::with_capacity(raw_referents.len());
        let mut ids: HashSet<&str> = HashSet::with_capacity(raw_referents.len());
        let mut by_commune: Vec<((NetworkIndex, Commune), ReferentIndex)> = Vec::new();
        let mut by_epci: Vec<((NetworkIndex, Epci), ReferentIndex)> = Vec::new();
        let mut by_departement: Vec<((NetworkIndex, Departement), ReferentIndex)> = Vec::new();
        let mut by_region: Vec<((NetworkIndex, Region), ReferentIndex)> = Vec::new();
        let mut fallback: HashMap<NetworkIndex, Vec<ReferentIndex>> = HashMap::new();
        let mut by_id: HashMap<&str, (ReferentIndex, NetworkIndex)> = HashMap::new();
        let mut pending = Vec::new();

        for (position, raw) in raw_referents.iter().enumerate() {
            let at = At(position + 1, &raw.id);
            let Some((network, referent)) = self.referent(&at, raw) else {
                continue;
            };
            if !ids.insert(&raw.id) {
                self.errors
                    .push(format!("{at}: the id is already used by another référent"));
                continue;
            }
            let index = referents.len() as ReferentIndex;
            by_id.insert(&raw.id, (index, network));
            if !raw.deputies.is_empty() || !raw.absences.is_empty() {
                pending.push((index, network, position + 1, raw));
            }
            let geography = self.geography.clone();
            for code in &raw.communes {
                match geography.check_current(code) {
                    Ok(commune) => by_commune.push(((network, commune), index)),
                    Err(error) => self.errors.push(format!("{at}: commune {code:?} {error}")),
                }
            }
            for code in &raw.epcis {
                match Epci::parse(code) {
                    Ok(epci) if geography.has_epci(epci) => by_epci.push(((network, epci), index)),
                    Ok(_) => self.errors.push(format!(
                        "{at}: EPCI {code:?} is not an EPCI à fiscalité propre of the official \
                         geography (millésime {}; the établissements publics territoriaux of the \
                         Grand Paris are not: list their communes)",
                        geography.millesime()
                    )),
                    Err(error) => self.errors.push(format!("{at}: EPCI {code:?} {error}")),
                }
            }
            for code in &raw.departements {
                match Departement::parse(code) {
                    Ok(departement) if geography.has_departement(departement) => {
                        by_departement.push(((network, departement), index));
                    }
                    Ok(_) => self.errors.push(format!(
                        "{at}: département {code:?} is not a département of the official geography"
                    )),
                    Err(error) => self
                        .errors
                        .push(format!("{at}: département {code:?} {error}")),
                }
            }
            for code in &raw.regions {
                match Region::parse(code) {
                    Ok(region) if geography.has_region(region) => {
                        by_region.push(((network, region), index));
                    }
                    Ok(_) => self.errors.push(format!(
                        "{at}: région {code:?} is not a région of the official geography"
                    )),
                    Err(error) => self.errors.push(format!("{at}: région {code:?} {error}")),
                }
            }
            if raw.fallback {
                fallback.entry(network).or_default().push(index);
            }
            let covers = !raw.communes.is_empty()
                || !raw.epcis.is_empty()
                || !raw.departements.is_empty()
                || !raw.regions.is_empty();
            if !covers && !raw.fallback {
                self.errors.push(format!(
                    "{at}: covers no territory: give `communes`, `epcis`, `departements`, \
                     `regions`, or `fallback = true`"
                ));
            }
            referents.push(referent);
        }

        let mut routes: HashMap<String, Vec<NetworkIndex>> = HashMap::new();
        let mut labels = HashMap::new();
        let mut escalations = HashMap::new();
        let mut any_kind = Vec::new();
        for (position, route) in raw_routes.into_iter().enumerate() {
            let at = format!("route #{} (kind {:?})", position + 1, route.kind);
            if route.kind != ANY_KIND
                && let Err(problem) = Kind::parse(&route.kind)
            {
                self.errors
                    .push(format!("{at}: the kind {problem}, or be \"*\""));
                continue;
            }
            if routes.contains_key(&route.kind) || (route.kind == ANY_KIND && !any_kind.is_empty())
            {
                self.errors.push(format!(
                    "{at}: this kind already has a route; list all its networks in one"
                ));
                continue;
            }
            if route.networks.is_empty() {
                self.errors.push(format!("{at}: `networks` is empty"));
            }
            let mut indexes = Vec::with_capacity(route.networks.len());
            for network in &route.networks {
                match self.networks.iter().position(|n| **n == **network) {
                    Some(index) if !indexes.contains(&(index as NetworkIndex)) => {
                        indexes.push(index as NetworkIndex);
                    }
                    Some(_) => {}
                    None => self
                        .errors
                        .push(format!("{at}: network {network:?} has no référent")),
                }
            }
            if let Some(label) = route.label {
                self.check_line(&at, "label", &label);
                labels.insert(route.kind.clone(), label);
            }
            if let Some(raw) = &route.escalate_after {
                let escalate = EscalateAfter {
                    urgent: self.wait(&at, "urgent", raw.urgent.as_deref()),
                    normal: self.wait(&at, "normal", raw.normal.as_deref()),
                };
                escalations.insert(route.kind.clone(), escalate);
            }
            if route.kind == ANY_KIND {
                any_kind = indexes;
            } else {
                routes.insert(route.kind, indexes);
            }
        }
        if routes.is_empty() && any_kind.is_empty() {
            self.errors
                .push("the registry has no [[route]]: no alert could be delivered".into());
        }

        let publishers = Publishers::build(raw_publishers, &self.geography, &mut self.errors);
        let availability = self.availability(&pending, &by_id, &fallback);

        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        let fallback = (0..self.networks.len())
            .map(|n| fallback.remove(&(n as NetworkIndex)).unwrap_or_default())
            .collect();
        Ok(Registry {
            referents,
            networks: self.networks.iter().map(|n| n.to_string()).collect(),
            routes,
            labels,
            any_kind,
            escalations,
            by_commune: Index::new(by_commune),
            by_epci: Index::new(by_epci),
            by_departement: Index::new(by_departement),
            by_region: Index::new(by_region),
            fallback,
            publishers,
            geography: self.geography,
            availability,
        })
    }

    /// The deputies and absences of the référents that have any, checked:
    /// a deputy is a référent of the same network, not the référent
    /// itself; an absence is two dates in order; and on every day of an
    /// absence someone stands in (a present deputy, or a present fallback
    /// référent of the network).
    fn availability(
        &mut self,
        pending: &[(ReferentIndex, NetworkIndex, usize, &RawReferent<'_>)],
        by_id: &HashMap<&str, (ReferentIndex, NetworkIndex)>,
        fallback: &HashMap<NetworkIndex, Vec<ReferentIndex>>,
    ) -> HashMap<ReferentIndex, Availability> {
        let mut availability: HashMap<ReferentIndex, Availability> = HashMap::new();
        for &(index, network, position, raw) in pending {
            let at = At(position, &raw.id);
            let mut entry = Availability::default();
            for (number, absence) in raw.absences.iter().enumerate() {
                match Absence::parse(&absence.from, &absence.to) {
                    Ok(absence) => entry.absences.push(absence),
                    Err(problem) => self
                        .errors
                        .push(format!("{at}: absence #{}: {problem}", number + 1)),
                }
            }
            for id in &raw.deputies {
                match by_id.get(&**id) {
                    None => self.errors.push(format!(
                        "{at}: deputy {id:?} is not a référent of the registry"
                    )),
                    Some(&(deputy, _)) if deputy == index => self
                        .errors
                        .push(format!("{at}: lists itself among its deputies")),
                    Some(&(_, other)) if other != network => self.errors.push(format!(
                        "{at}: deputy {id:?} is of network {:?}, not {:?}: a deputy stands in \
                         within its network",
                        &*self.networks[usize::from(other)],
                        &*self.networks[usize::from(network)]
                    )),
                    Some(&(deputy, _)) => entry.deputies.push(deputy),
                }
            }
            availability.insert(index, entry);
        }
        let absent = |index: &ReferentIndex, date: Date| {
            availability
                .get(index)
                .is_some_and(|a| a.absences.iter().any(|absence| absence.covers(date)))
        };
        for &(index, network, position, raw) in pending {
            let Some(entry) = availability.get(&index) else {
                continue;
            };
            let fallbacks = fallback
                .get(&network)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let nobody = entry
                .absences
                .iter()
                .flat_map(Absence::dates)
                .find(|&date| {
                    let deputy = entry.deputies.iter().any(|d| !absent(d, date));
                    let stand_in = fallbacks.iter().any(|f| *f != index && !absent(f, date));
                    !deputy && !stand_in
                });
            if let Some(date) = nobody {
                self.errors.push(format!(
                    "{}: on {date} it is absent, and so are all its deputies and its network's \
                     fallback référents: its alerts would reach nobody in its place",
                    At(position, &raw.id)
                ));
            }
        }
        availability.retain(|_, entry| !entry.deputies.is_empty() || !entry.absences.is_empty());
        availability
    }

    /// The référent, and the index of its network; `None` if it has errors.
    fn referent(&mut self, at: &At<'_>, raw: &RawReferent<'_>) -> Option<(NetworkIndex, Referent)> {
        let errors_before = self.errors.len();
        let id = ReferentId::parse(&raw.id).map_err(|e| self.errors.push(format!("{at}: {e}")));
        if !crate::alert::is_identifier(&raw.network) {
            self.errors.push(format!(
                "{at}: network {:?} must be a lowercase identifier (e.g. `ccas`, `cpam`)",
                raw.network
            ));
        }
        let email = raw
            .email
            .parse::<Address>()
            .map_err(|error| error.to_string())
            .and_then(|address| sendable(&address).map(|()| address))
            .map_err(|problem| {
                self.errors.push(format!(
                    "{at}: email {:?} is not a valid address: {problem}",
                    raw.email
                ));
            });
        for (field, value) in [("name", &raw.name), ("organisation", &raw.organisation)] {
            if let Some(value) = value.as_deref() {
                self.check_line(at, field, value);
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        let (index, network) = self.network(&raw.network);
        Some((
            index,
            Referent {
                id: id.ok()?,
                network,
                organisation: raw.organisation.as_deref().map(str::to_owned),
                mailbox: Mailbox::new(raw.name.as_deref().map(str::to_owned), email.ok()?),
            },
        ))
    }

    /// The index and shared name of a network, added on first sight.
    fn network(&mut self, name: &str) -> (NetworkIndex, Arc<str>) {
        let index = match self.networks.iter().position(|n| **n == *name) {
            Some(index) => index,
            None => {
                self.networks.push(Arc::from(name));
                self.networks.len() - 1
            }
        };
        (index as NetworkIndex, self.networks[index].clone())
    }

    /// One wait of `escalate_after`, e.g. `2h`, `2d`, `90min`.
    fn wait(&mut self, at: &dyn fmt::Display, field: &str, text: Option<&str>) -> Option<Duration> {
        let text = text?;
        match humantime::parse_duration(text) {
            Ok(wait) if (ESCALATION_MIN..=ESCALATION_MAX).contains(&wait) => Some(wait),
            Ok(_) => {
                self.errors.push(format!(
                    "{at}: `escalate_after.{field}` must be between 1s and 30d"
                ));
                None
            }
            Err(_) => {
                self.errors.push(format!(
                    "{at}: `escalate_after.{field}` must be a duration such as \"2h\" or \"2d\""
                ));
                None
            }
        }
    }

    fn check_line(&mut self, at: &dyn fmt::Display, field: &str, value: &str) {
        if value.trim().is_empty() || value.chars().any(char::is_control) {
            self.errors.push(format!(
                "{at}: `{field}` must be one non-empty line of text"
            ));
        }
    }
}

/// Whether relais can send to `address`: a local part that is a dot-atom
/// (RFC 5321; UTF-8 allowed, RFC 6531), and a domain name that has an ASCII
/// form (IDNA). A quoted local part or an address literal as domain would
/// be refused when the email is built, or by most servers.
fn sendable(address: &Address) -> Result<(), String> {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";
    let local = address.user();
    let atom = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c) || !c.is_ascii())
    };
    if local.starts_with('"') {
        return Err("a quoted local part cannot be sent".into());
    }
    if !local.split('.').all(atom) {
        return Err(
            "its local part is not a plain mailbox name (letters, digits, dots, \
                    and !#$%&'*+-/=?^_`{|}~)"
                .into(),
        );
    }
    let domain = address.domain();
    if domain.starts_with('[') {
        return Err("an address literal as domain cannot be used; give a domain name".into());
    }
    let ascii = idna::domain_to_ascii(domain)
        .map_err(|_| "its domain has no ASCII form (IDNA)".to_owned())?;
    let labels_ok = ascii.split('.').count() >= 2
        && ascii.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok {
        return Err("its domain is not a domain name".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geography::tests::france;

    const REGISTRY: &str = r#"
        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas"]
        label = "Orientation sociale"

        [[route]]
        kind = "acces_aux_droits"
        networks = ["cpam", "caf"]

        [[referent]]
        id = "ccas-paris-13"
        network = "ccas"
        name = "Camille Martin"
        organisation = "CCAS de Paris 13e"
        email = "camille.martin@ccas-paris13.example.org"
        communes = ["75113"]

        [[referent]]
        id = "ccas-paris-13-bis"
        network = "ccas"
        email = "accueil@ccas-paris13.example.org"
        communes = ["75113"]

        [[referent]]
        id = "ccas-paris"
        network = "ccas"
        email = "social@paris.example.org"
        departements = ["75"]

        [[referent]]
        id = "ccas-fallback"
        network = "ccas"
        email = "permanence@ccas.example.org"
        fallback = true

        [[referent]]
        id = "ccas-ajaccio"
        network = "ccas"
        email = "ccas@ajaccio.example.org"
        communes = ["2A004"]

        [[referent]]
        id = "cpam-974"
        network = "cpam"
        email = "referent@cpam-reunion.example.org"
        departements = ["974"]

        [[referent]]
        id = "caf-974"
        network = "caf"
        email = "referent@caf-reunion.example.org"
        communes = ["97411"]
    "#;

    fn registry() -> Registry {
        Registry::from_toml(REGISTRY, france()).unwrap()
    }

    fn kind(kind: &str) -> Kind {
        Kind::parse(kind).unwrap()
    }

    fn commune(code: &str) -> Territory {
        france().territory(Some(code), None).unwrap()
    }

    fn departement(code: &str) -> Territory {
        france().territory(None, Some(code)).unwrap()
    }

    fn ids<'r>(resolution: &Resolution<'r>) -> Vec<&'r str> {
        resolution.referents().map(|r| r.id().as_str()).collect()
    }

    #[test]
    fn the_arrondissement_level_wins_and_every_referent_there_receives() {
        let registry = registry();
        let resolution = registry
            .resolve(&kind("orientation_sociale"), commune("75113"))
            .unwrap();
        assert_eq!(ids(&resolution), ["ccas-paris-13", "ccas-paris-13-bis"]);
        assert_eq!(resolution.matched[0].level, Level::Arrondissement);
        assert!(resolution.unmatched.is_empty());
    }

    #[test]
    fn the_departement_level_serves_other_communes_of_the_departement() {
        let registry = registry();
        let resolution = registry
            .resolve(&kind("orientation_sociale"), commune("75115"))
            .unwrap();
        assert_eq!(ids(&resolution), ["ccas-paris"]);
        assert_eq!(resolution.matched[0].level, Level::Departement);
        let resolution = registry
            .resolve(&kind("orientation_sociale"), departement("75"))
            .unwrap();
        assert_eq!(ids(&resolution), ["ccas-paris"]);
    }

    #[test]
    fn the_fallback_serves_territories_nobody_covers() {
        let registry = registry();
        let resolution = registry
            .resolve(&kind("orientation_sociale"), commune("69123"))
            .unwrap();
        assert_eq!(ids(&resolution), ["ccas-fallback"]);
        assert_eq!(resolution.matched[0].level, Level::Fallback);
    }

    #[test]
    fn corsican_and_overseas_codes_resolve_at_their_own_level() {
        let registry = registry();
        let ajaccio = registry
            .resolve(&kind("orientation_sociale"), commune("2A004"))
            .unwrap();
        assert_eq!(ids(&ajaccio), ["ccas-ajaccio"]);
        let saint_denis = registry
            .resolve(&kind("acces_aux_droits"), commune("97411"))
            .unwrap();
        assert_eq!(ids(&saint_denis), ["cpam-974", "caf-974"]);
        assert_eq!(saint_denis.matched[0].level, Level::Departement);
        assert_eq!(saint_denis.matched[1].level, Level::Commune);
    }

    #[test]
    fn a_network_without_match_is_reported_beside_the_others() {
        let registry = registry();
        let resolution = registry
            .resolve(&kind("acces_aux_droits"), commune("97415"))
            .unwrap();
        assert_eq!(ids(&resolution), ["cpam-974"]);
        assert_eq!(resolution.unmatched, ["caf"]);
        assert_eq!(
            resolution
                .unmatched_error(commune("97415"))
                .unwrap()
                .to_string(),
            "no référent of network(s) caf for commune 97415 (département 974), and no fallback"
        );
    }

    #[test]
    fn an_unknown_kind_or_an_uncovered_territory_is_unroutable() {
        let registry = registry();
        assert_eq!(
            registry
                .resolve(&kind("demande_visite"), commune("75113"))
                .unwrap_err(),
            Unroutable::NoRoute("demande_visite".into())
        );
        assert_eq!(
            registry
                .resolve(&kind("acces_aux_droits"), commune("75113"))
                .unwrap_err()
                .to_string(),
            "no référent of network(s) cpam, caf for commune 75113 (département 75), and no fallback"
        );
    }

    #[test]
    fn the_wildcard_route_adds_its_networks_to_every_kind() {
        let registry = Registry::from_toml(
            &format!("{REGISTRY}\n[[route]]\nkind = \"*\"\nnetworks = [\"ccas\"]\n"),
            france(),
        )
        .unwrap();
        let resolution = registry
            .resolve(&kind("demande_visite"), commune("2A004"))
            .unwrap();
        assert_eq!(ids(&resolution), ["ccas-ajaccio"]);
        let both = registry
            .resolve(&kind("acces_aux_droits"), commune("97411"))
            .unwrap();
        assert_eq!(ids(&both), ["cpam-974", "caf-974", "ccas-fallback"]);
    }

    #[test]
    fn labels_name_the_kind_for_people() {
        let registry = registry();
        assert_eq!(
            registry.kind_label(&kind("orientation_sociale")),
            "Orientation sociale"
        );
        assert_eq!(
            registry.kind_label(&kind("acces_aux_droits")),
            "acces aux droits"
        );
    }

    #[test]
    fn every_error_of_a_broken_registry_is_listed() {
        let broken = r#"
            [[route]]
            kind = "orientation_sociale"
            networks = ["ccas", "msa"]

            [[route]]
            kind = "orientation_sociale"
            networks = ["ccas"]

            [[route]]
            kind = "Bad Kind"
            networks = ["ccas"]

            [[referent]]
            id = "a"
            network = "ccas"
            email = "not-an-address"
            communes = ["75113"]

            [[referent]]
            id = "b"
            network = "ccas"
            email = "b@example.org"
            communes = ["7511", "75113"]
            departements = ["20"]

            [[referent]]
            id = "b"
            network = "ccas"
            email = "b2@example.org"
            fallback = true

            [[referent]]
            id = "c"
            network = "ccas"
            email = "c@example.org"

            [[referent]]
            id = "d d"
            network = "CCAS"
            name = "Line\nbreak"
            email = "d@example.org"
            fallback = true
        "#;
        let RegistryError::Invalid { errors, .. } =
            Registry::from_toml(broken, france()).unwrap_err()
        else {
            panic!("expected validation errors");
        };
        let expected = [
            r#"referent #1 ("a"): email "not-an-address" is not a valid address: "#,
            r#"referent #2 ("b"): commune "7511" is not an INSEE commune code"#,
            r#"referent #2 ("b"): département "20" is not a département code"#,
            r#"referent #3 ("b"): the id is already used by another référent"#,
            r#"referent #4 ("c"): covers no territory"#,
            r#"referent #5 ("d d"): id "d d" must be 1 to 64 characters"#,
            r#"referent #5 ("d d"): network "CCAS" must be a lowercase identifier"#,
            r#"referent #5 ("d d"): `name` must be one non-empty line of text"#,
            r#"route #1 (kind "orientation_sociale"): network "msa" has no référent"#,
            r#"route #2 (kind "orientation_sociale"): this kind already has a route"#,
            r#"route #3 (kind "Bad Kind"): the kind must be a lowercase identifier"#,
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, start) in errors.iter().zip(expected) {
            assert!(
                error.starts_with(start),
                "{error:?} should start with {start:?}"
            );
        }
    }

    #[test]
    fn an_address_relais_cannot_send_is_refused_naming_the_referent() {
        let referent = |id: &str, email: &str| {
            format!(
                "[[referent]]\nid = \"{id}\"\nnetwork = \"ccas\"\nemail = '{email}'\ncommunes = [\"75113\"]\n"
            )
        };
        let registry = [
            "[[route]]\nkind = \"orientation_sociale\"\nnetworks = [\"ccas\"]\n".to_owned(),
            referent("quoted", r#""jean dupont"@ccas.example.org"#),
            referent("literal", "agent@[192.0.2.1]"),
            referent("idn", "agent@mairie-évry.example.org"),
            referent("utf8", "éloïse@mairie-évry.example.org"),
        ]
        .concat();
        let RegistryError::Invalid { errors, .. } =
            Registry::from_toml(&registry, france()).unwrap_err()
        else {
            panic!("expected validation errors");
        };
        assert_eq!(
            errors,
            [
                r#"referent #1 ("quoted"): email "\"jean dupont\"@ccas.example.org" is not a valid address: a quoted local part cannot be sent"#,
                r#"referent #2 ("literal"): email "agent@[192.0.2.1]" is not a valid address: an address literal as domain cannot be used; give a domain name"#,
            ]
        );
    }

    #[test]
    fn unknown_keys_and_an_empty_registry_are_refused() {
        let typo =
            "[[referent]]\nid = \"a\"\nnetwork = \"ccas\"\nemail = \"a@b.org\"\ncomunes = []\n";
        let error = Registry::from_toml(typo, france()).unwrap_err().to_string();
        assert!(error.contains("unknown field `comunes`"), "{error}");
        let error = Registry::from_toml("", france()).unwrap_err().to_string();
        assert!(error.contains("has no [[route]]"), "{error}");
    }

    #[test]
    fn a_json_registry_with_the_same_keys_is_the_same_registry() {
        let dir = tempfile::tempdir().unwrap();
        let value: toml::Value = toml::from_str(REGISTRY).unwrap();
        let path = dir.path().join("referents.json");
        std::fs::write(&path, serde_json::to_string(&value).unwrap()).unwrap();
        let json = Registry::load(&path, france()).unwrap();
        assert_eq!(json.summary(), registry().summary());
        let resolution = json
            .resolve(&kind("orientation_sociale"), commune("75113"))
            .unwrap();
        assert_eq!(ids(&resolution), ["ccas-paris-13", "ccas-paris-13-bis"]);

        std::fs::write(
            &path,
            r#"{"route": [], "referent": [{"id": "a", "network": "ccas", "email": "x"}]}"#,
        )
        .unwrap();
        let RegistryError::Invalid { errors, .. } = Registry::load(&path, france()).unwrap_err()
        else {
            panic!("expected validation errors");
        };
        assert_eq!(errors.len(), 2, "{errors:#?}");
        std::fs::write(&path, r#"{"route": [], "referen": []}"#).unwrap();
        let error = Registry::load(&path, france()).unwrap_err().to_string();
        assert!(error.contains("unknown field `referen`"), "{error}");
    }

    #[test]
    fn the_summary_counts_coverage_per_network() {
        let summary = registry().summary();
        assert_eq!(summary.referents, 7);
        assert_eq!(
            summary.networks["ccas"],
            NetworkSummary {
                referents: 5,
                communes: 2,
                epcis: 0,
                departements: 1,
                regions: 0,
                fallbacks: 1
            }
        );
        assert_eq!(
            summary.routes[0],
            ("acces_aux_droits".into(), vec!["cpam".into(), "caf".into()])
        );
    }

    #[test]
    fn every_error_of_the_publishers_is_listed() {
        let registry = format!(
            r#"{REGISTRY}
            [[publisher]]
            user = "sos75"
            association = "SOS Médecins Paris"
            departements = ["75"]
            communes = ["7511"]
            kinds = ["Bad Kind"]

            [[publisher]]
            user = "sos75"
            association = " "
            everywhere = true
            communes = ["75113"]

            [[publisher]]
            user = "sos13"
            association = "SOS Médecins Marseille"
            kinds = []
            "#
        );
        let RegistryError::Invalid { errors, .. } =
            Registry::from_toml(&registry, france()).unwrap_err()
        else {
            panic!("not refused as invalid");
        };
        assert_eq!(
            errors,
            [
                r#"publisher #1 ("sos75"): commune "7511" is not an INSEE commune code (five characters: a département number, `2A` or `2B`, then three digits; overseas: `97x`/`98x` then two digits)"#,
                r#"publisher #1 ("sos75"): the kind must be a lowercase identifier: a letter, then letters, digits or `_`, at most 64"#,
                r#"publisher #2 ("sos75"): `association` must be one non-empty line of text"#,
                r#"publisher #2 ("sos75"): `everywhere = true` with `communes` or `departements`: give one or the other"#,
                r#"publisher #2 ("sos75"): this user already has a [[publisher]]; one entry per RabbitMQ user"#,
                r#"publisher #3 ("sos13"): may alert about no territory: give `communes`, `departements`, or `everywhere = true`"#,
                r#"publisher #3 ("sos13"): `kinds` is empty; leave it out to allow every kind"#,
            ]
        );
    }

    #[test]
    fn registry_codes_must_be_current_and_every_wrong_one_is_listed_with_the_code_to_use() {
        let broken = r#"
            [[route]]
            kind = "orientation_sociale"
            networks = ["ccas"]

            [[referent]]
            id = "a"
            network = "ccas"
            email = "a@example.org"
            communes = ["01039", "20004", "75013", "75999"]
            epcis = ["200057867", "12345"]
            departements = ["989"]
            regions = ["12"]
        "#;
        let RegistryError::Invalid { errors, .. } =
            Registry::from_toml(broken, france()).unwrap_err()
        else {
            panic!("not refused as invalid");
        };
        assert_eq!(
            errors,
            [
                r#"referent #1 ("a"): commune "01039" is a commune déléguée or associée of Culoz-Béon (01138): list 01138 instead"#,
                r#"referent #1 ("a"): commune "20004" is a former code of Ajaccio (2A004): list 2A004 instead"#,
                r#"referent #1 ("a"): commune "75013" is a postal code, not an INSEE commune code: give the commune's code from the Code officiel géographique (Paris 13e is 75113, its postal code 75013)"#,
                r#"referent #1 ("a"): commune "75999" is not a commune code of the official geography (millésime 2026)"#,
                r#"referent #1 ("a"): EPCI "200057867" is not an EPCI à fiscalité propre of the official geography (millésime 2026; the établissements publics territoriaux of the Grand Paris are not: list their communes)"#,
                r#"referent #1 ("a"): EPCI "12345" is not the SIREN number of an EPCI (nine digits, e.g. 200046977)"#,
                r#"referent #1 ("a"): région "12" is not a région of the official geography"#,
            ]
        );
    }

    #[test]
    fn resolution_climbs_from_arrondissement_to_region() {
        let registry = Registry::from_toml(
            r#"
            [[route]]
            kind = "orientation_sociale"
            networks = ["ccas"]

            [[referent]]
            id = "lyon-3"
            network = "ccas"
            email = "lyon3@example.org"
            communes = ["69383"]

            [[referent]]
            id = "lyon"
            network = "ccas"
            email = "lyon@example.org"
            communes = ["69123"]

            [[referent]]
            id = "metropole"
            network = "ccas"
            email = "metropole@example.org"
            epcis = ["200046977"]

            [[referent]]
            id = "rhone"
            network = "ccas"
            email = "rhone@example.org"
            departements = ["69"]

            [[referent]]
            id = "aura"
            network = "ccas"
            email = "aura@example.org"
            regions = ["84"]

            [[referent]]
            id = "france"
            network = "ccas"
            email = "france@example.org"
            fallback = true
            "#,
            france(),
        )
        .unwrap();
        let at = |territory: Territory| {
            let resolution = registry
                .resolve(&kind("orientation_sociale"), territory)
                .unwrap();
            (ids(&resolution)[0].to_owned(), resolution.matched[0].level)
        };
        let expected = [
            ("69383", "lyon-3", Level::Arrondissement),
            ("69381", "lyon", Level::Commune),
            ("69034", "metropole", Level::Epci),
            ("69001", "rhone", Level::Departement),
            ("01053", "aura", Level::Region),
            ("75113", "france", Level::Fallback),
        ];
        for (code, id, level) in expected {
            assert_eq!(at(commune(code)), (id.to_owned(), level), "{code}");
        }
        assert_eq!(at(departement("01")), ("aura".to_owned(), Level::Region));
    }

    const ABSENCES: &str = r#"
        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas"]

        [[referent]]
        id = "camille"
        network = "ccas"
        name = "Camille Martin"
        email = "camille@example.org"
        communes = ["75113"]
        deputies = ["dominique", "sacha"]
        absences = [{ from = "2026-12-24", to = "2027-01-02" }]

        [[referent]]
        id = "dominique"
        network = "ccas"
        email = "dominique@example.org"
        communes = ["75114"]
        absences = [{ from = "2026-12-31", to = "2027-01-02" }]

        [[referent]]
        id = "sacha"
        network = "ccas"
        email = "sacha@example.org"
        communes = ["75115"]
        absences = [{ from = "2027-01-01", to = "2027-01-02" }]

        [[referent]]
        id = "permanence"
        network = "ccas"
        email = "permanence@example.org"
        fallback = true
    "#;

    #[test]
    fn an_absent_referent_s_alerts_go_to_its_present_deputies_then_to_the_fallback() {
        use time::macros::datetime;
        let registry = Registry::from_toml(ABSENCES, france()).unwrap();
        let at = |instant| {
            let resolution = registry
                .resolve_at(&kind("orientation_sociale"), commune("75113"), instant)
                .unwrap();
            let behalf: Vec<Option<String>> = resolution
                .referents()
                .map(|r| resolution.on_behalf_of(r).map(|a| a.id().to_string()))
                .collect();
            (ids(&resolution).join(","), behalf)
        };
        // The last minute before the absence, Paris time (UTC+1).
        assert_eq!(
            at(datetime!(2026-12-23 22:59:59 UTC)),
            ("camille".into(), vec![None])
        );
        let camille = Some("camille".to_owned());
        assert_eq!(
            at(datetime!(2026-12-23 23:00:00 UTC)),
            (
                "dominique,sacha".into(),
                vec![camille.clone(), camille.clone()]
            )
        );
        assert_eq!(
            at(datetime!(2026-12-31 10:00:00 +01:00)),
            ("sacha".into(), vec![camille.clone()])
        );
        assert_eq!(
            at(datetime!(2027-01-02 23:59:59 +01:00)),
            ("permanence".into(), vec![camille])
        );
        assert_eq!(
            at(datetime!(2027-01-03 00:00:00 +01:00)),
            ("camille".into(), vec![None])
        );
    }

    #[test]
    fn an_alert_climbs_to_the_present_deputies_then_to_the_other_fallback_referents() {
        use time::macros::datetime;
        let text = ABSENCES.replacen(
            "networks = [\"ccas\"]",
            "networks = [\"ccas\"]\n        escalate_after = { urgent = \"2h\", normal = \"2d\" }",
            1,
        );
        let registry = Registry::from_toml(&text, france()).unwrap();
        let orientation = kind("orientation_sociale");
        assert_eq!(
            registry.escalate_after(&orientation, Priority::Urgent),
            Some(Duration::from_secs(2 * 3600))
        );
        assert_eq!(
            registry.escalate_after(&orientation, Priority::Normal),
            Some(Duration::from_secs(2 * 24 * 3600))
        );
        assert_eq!(
            registry.escalate_after(&kind("autre"), Priority::Urgent),
            None
        );
        let tiers = |instant| {
            let tiers = registry
                .escalation_tiers(&orientation, commune("75113"), instant)
                .unwrap();
            tiers
                .iter()
                .map(|t| {
                    let names = |list: &[&Referent]| {
                        list.iter()
                            .map(|r| r.id().to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    format!(
                        "{}: {} / {}",
                        t.network,
                        names(&t.deputies),
                        names(&t.fallback)
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            tiers(datetime!(2026-12-01 10:00:00 +01:00)),
            ["ccas: dominique,sacha / permanence"]
        );
        // Camille and Dominique away: Sacha, standing in, had the alert
        // first; the next step is the fallback.
        assert_eq!(
            tiers(datetime!(2026-12-31 10:00:00 +01:00)),
            ["ccas:  / permanence"]
        );
    }

    #[test]
    fn a_wait_that_is_no_duration_or_out_of_bounds_is_refused() {
        let text = ABSENCES.replacen(
            "networks = [\"ccas\"]",
            "networks = [\"ccas\"]\n        escalate_after = { urgent = \"soon\", normal = \"90d\" }",
            1,
        );
        let RegistryError::Invalid { errors, .. } =
            Registry::from_toml(&text, france()).unwrap_err()
        else {
            panic!("refused for another reason")
        };
        assert_eq!(
            errors,
            [
                r#"route #1 (kind "orientation_sociale"): `escalate_after.urgent` must be a duration such as "2h" or "2d""#,
                r#"route #1 (kind "orientation_sociale"): `escalate_after.normal` must be between 1s and 30d"#,
            ]
        );
    }

    #[test]
    fn every_error_of_the_deputies_and_absences_is_listed() {
        let broken = r#"
            [[route]]
            kind = "orientation_sociale"
            networks = ["ccas", "cpam"]

            [[referent]]
            id = "a"
            network = "ccas"
            email = "a@example.org"
            communes = ["75113"]
            deputies = ["a", "nobody", "c"]
            absences = [{ from = "2027-01-02", to = "2026-12-24" }, { from = "2026-12-24", to = "2026-12-25" }]

            [[referent]]
            id = "b"
            network = "ccas"
            email = "b@example.org"
            communes = ["75114"]
            deputies = ["d"]
            absences = [{ from = "2026-08-01", to = "2026-08-15" }]

            [[referent]]
            id = "c"
            network = "cpam"
            email = "c@example.org"
            departements = ["75"]

            [[referent]]
            id = "d"
            network = "ccas"
            email = "d@example.org"
            communes = ["75115"]
            deputies = ["b"]
            absences = [{ from = "2026-08-10", to = "2026-08-20" }]
        "#;
        let RegistryError::Invalid { errors, .. } =
            Registry::from_toml(broken, france()).unwrap_err()
        else {
            panic!("not refused as invalid");
        };
        assert_eq!(
            errors,
            [
                r#"referent #1 ("a"): absence #1: `to` is before `from`"#,
                r#"referent #1 ("a"): lists itself among its deputies"#,
                r#"referent #1 ("a"): deputy "nobody" is not a référent of the registry"#,
                r#"referent #1 ("a"): deputy "c" is of network "cpam", not "ccas": a deputy stands in within its network"#,
                r#"referent #1 ("a"): on 2026-12-24 it is absent, and so are all its deputies and its network's fallback référents: its alerts would reach nobody in its place"#,
                r#"referent #2 ("b"): on 2026-08-10 it is absent, and so are all its deputies and its network's fallback référents: its alerts would reach nobody in its place"#,
                r#"referent #4 ("d"): on 2026-08-10 it is absent, and so are all its deputies and its network's fallback référents: its alerts would reach nobody in its place"#,
            ]
        );
    }
}
