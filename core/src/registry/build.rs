//! The registry's checks: from the file as written (`raw`) to a
//! [`Registry`], one named step per group of rules (the référents, what each
//! covers, the routes, the publishers, the deputies and absences). Every
//! check pushes its error and goes on, so that the operator sees every
//! problem of the file at once; a registry with any error is refused whole,
//! never half built.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lettre::Address;
use lettre::message::Mailbox;
use time::Date;

use super::office_hours::{self, Openings};
use super::raw::{RawNetwork, RawReferent, RawRegistry, RawRoute};
use super::{
    ANY_KIND, Availability, EscalateAfter, Index, NetworkIndex, Phone, Referent, ReferentId,
    ReferentIndex, Registry,
};
use crate::alert::Kind;
use crate::availability::Absence;
use crate::geography::{Epci, Geography, Region};
use crate::publisher::Publishers;
use crate::territory::{Commune, Departement};

/// Shortest and longest wait of an escalation step: a minute would do in
/// practice, a second lets the tests walk the chain; the broker's queue
/// TTL and the acknowledgement link's life bound the other end.
const ESCALATION_MIN: Duration = Duration::from_secs(1);
const ESCALATION_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Longest `version` label, in characters.
const VERSION_MAX: usize = 64;

/// Checks a registry file as written against `geography`.
///
/// # Errors
/// Every error of the file, in the order of its entries: the référents
/// (and what each covers), the routes, the publishers, then the deputies
/// and absences.
pub(super) fn build(
    raw: RawRegistry<'_>,
    geography: Arc<Geography>,
) -> Result<Registry, Vec<String>> {
    let RawRegistry {
        version,
        route: raw_routes,
        referent: raw_referents,
        publisher: raw_publishers,
        network: raw_networks,
    } = raw;
    let mut builder = Builder::new(geography);
    if let Some(version) = &version {
        builder.check_version(version);
    }
    let referents = builder.referents(&raw_referents);
    let routes = builder.routes(raw_routes);
    let publishers = Publishers::build(raw_publishers, &builder.geography, &mut builder.errors);
    let availability = builder.availability(&referents);
    let openings = builder.openings(&raw_referents, &referents, &raw_networks);
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    let mut registry = builder.assemble(referents, routes, publishers, availability);
    registry.openings = openings;
    registry.version = version;
    Ok(registry)
}

/// Where an error is, e.g. `referent #12 ("ccas-paris")`; formatted only
/// when there is an error to report.
struct At<'r>(usize, &'r str);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "referent #{} ({:?})", self.0, self.1)
    }
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

/// The référents that passed their checks, and where each is indexed;
/// borrows the file's entries.
struct Referents<'a> {
    list: Vec<Referent>,
    by_id: HashMap<&'a str, (ReferentIndex, NetworkIndex)>,
    coverage: Coverage,
    /// Per network, its fallback référents.
    fallback: HashMap<NetworkIndex, Vec<ReferentIndex>>,
    /// The référents with deputies or absences (index, network, position
    /// in the file from 1, entry): checked once every id is known.
    pending: Vec<(ReferentIndex, NetworkIndex, usize, &'a RawReferent<'a>)>,
}

/// Each territory code a référent covers, with its network, in file order.
#[derive(Default)]
struct Coverage {
    communes: Vec<((NetworkIndex, Commune), ReferentIndex)>,
    epcis: Vec<((NetworkIndex, Epci), ReferentIndex)>,
    departements: Vec<((NetworkIndex, Departement), ReferentIndex)>,
    regions: Vec<((NetworkIndex, Region), ReferentIndex)>,
}

/// The routes that passed their checks.
#[derive(Default)]
struct Routes {
    /// Kind → networks, in the order the route lists them.
    by_kind: HashMap<String, Vec<NetworkIndex>>,
    labels: HashMap<String, String>,
    /// Kind → who writes its alerts, as the email names them.
    authors: HashMap<String, String>,
    escalations: HashMap<String, EscalateAfter>,
    /// Networks of the `*` route.
    any_kind: Vec<NetworkIndex>,
}

impl Builder {
    fn new(geography: Arc<Geography>) -> Self {
        Self {
            errors: Vec::new(),
            networks: Vec::new(),
            geography,
        }
    }

    /// Each référent: its identity and address, a unique id, what it covers.
    fn referents<'a>(&mut self, raws: &'a [RawReferent<'a>]) -> Referents<'a> {
        let mut referents = Referents {
            list: Vec::with_capacity(raws.len()),
            by_id: HashMap::with_capacity(raws.len()),
            coverage: Coverage::default(),
            fallback: HashMap::new(),
            pending: Vec::new(),
        };
        for (position, raw) in raws.iter().enumerate() {
            let at = At(position + 1, &raw.id);
            let Some((network, referent)) = self.referent(&at, raw) else {
                continue;
            };
            if referents.by_id.contains_key(&*raw.id) {
                self.errors
                    .push(format!("{at}: the id is already used by another référent"));
                continue;
            }
            let index = referents.list.len() as ReferentIndex;
            referents.by_id.insert(&raw.id, (index, network));
            if !raw.deputies.is_empty() || !raw.absences.is_empty() {
                referents.pending.push((index, network, position + 1, raw));
            }
            self.coverage(&at, raw, (network, index), &mut referents.coverage);
            if raw.fallback {
                referents.fallback.entry(network).or_default().push(index);
            }
            referents.list.push(referent);
        }
        referents
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
        let phone = raw
            .phone
            .as_deref()
            .map(Phone::parse)
            .transpose()
            .map_err(|problem| self.errors.push(format!("{at}: {problem}")));
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
                phone: phone.ok()?,
            },
        ))
    }

    /// What a référent covers: each code a current one of the geography,
    /// and at least one territory, or `fallback = true`.
    fn coverage(
        &mut self,
        at: &At<'_>,
        raw: &RawReferent<'_>,
        (network, index): (NetworkIndex, ReferentIndex),
        coverage: &mut Coverage,
    ) {
        let geography = &*self.geography;
        for code in &raw.communes {
            match geography.check_current(code) {
                Ok(commune) => coverage.communes.push(((network, commune), index)),
                Err(error) => self.errors.push(format!("{at}: commune {code:?} {error}")),
            }
        }
        for code in &raw.epcis {
            match Epci::parse(code) {
                Ok(epci) if geography.has_epci(epci) => {
                    coverage.epcis.push(((network, epci), index));
                }
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
                    coverage.departements.push(((network, departement), index));
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
                    coverage.regions.push(((network, region), index));
                }
                Ok(_) => self.errors.push(format!(
                    "{at}: région {code:?} is not a région of the official geography"
                )),
                Err(error) => self.errors.push(format!("{at}: région {code:?} {error}")),
            }
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
    }

    /// Each route, then that there is one.
    fn routes(&mut self, raws: Vec<RawRoute>) -> Routes {
        let mut routes = Routes::default();
        for (position, route) in raws.into_iter().enumerate() {
            self.route(position + 1, route, &mut routes);
        }
        if routes.by_kind.is_empty() && routes.any_kind.is_empty() {
            self.errors
                .push("the registry has no [[route]]: no alert could be delivered".into());
        }
        routes
    }

    /// One route: a valid kind (or `*`) routed once, to networks that have
    /// référents, with a one-line label and waits within bounds.
    fn route(&mut self, position: usize, route: RawRoute, routes: &mut Routes) {
        let at = format!("route #{position} (kind {:?})", route.kind);
        if route.kind != ANY_KIND
            && let Err(problem) = Kind::parse(&route.kind)
        {
            self.errors
                .push(format!("{at}: the kind {problem}, or be \"*\""));
            return;
        }
        if routes.by_kind.contains_key(&route.kind)
            || (route.kind == ANY_KIND && !routes.any_kind.is_empty())
        {
            self.errors.push(format!(
                "{at}: this kind already has a route; list all its networks in one"
            ));
            return;
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
            routes.labels.insert(route.kind.clone(), label);
        }
        if let Some(author) = route.author {
            self.check_line(&at, "author", &author);
            routes.authors.insert(route.kind.clone(), author);
        }
        if let Some(raw) = &route.escalate_after {
            let escalate = EscalateAfter {
                urgent: self.wait(&at, "urgent", raw.urgent.as_deref()),
                normal: self.wait(&at, "normal", raw.normal.as_deref()),
            };
            routes.escalations.insert(route.kind.clone(), escalate);
        }
        if route.kind == ANY_KIND {
            routes.any_kind = indexes;
        } else {
            routes.by_kind.insert(route.kind, indexes);
        }
    }

    /// The deputies and absences of the référents that have any, checked:
    /// a deputy is a référent of the same network, not the référent
    /// itself; an absence is two dates in order; and on every day of an
    /// absence someone stands in (a present deputy, or a present fallback
    /// référent of the network).
    fn availability(&mut self, referents: &Referents<'_>) -> HashMap<ReferentIndex, Availability> {
        let mut availability: HashMap<ReferentIndex, Availability> = HashMap::new();
        for &(index, network, position, raw) in &referents.pending {
            let entry = self.deputies_and_absences(
                &At(position, &raw.id),
                raw,
                index,
                network,
                &referents.by_id,
            );
            availability.insert(index, entry);
        }
        self.stand_ins(&availability, referents);
        availability.retain(|_, entry| !entry.deputies.is_empty() || !entry.absences.is_empty());
        availability
    }

    /// One référent's absences, each two dates in order, and its deputies,
    /// each another référent of its network.
    fn deputies_and_absences(
        &mut self,
        at: &At<'_>,
        raw: &RawReferent<'_>,
        index: ReferentIndex,
        network: NetworkIndex,
        by_id: &HashMap<&str, (ReferentIndex, NetworkIndex)>,
    ) -> Availability {
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
        entry
    }

    /// That on every day of an absence someone stands in: a present
    /// deputy, or a present fallback référent of the network.
    fn stand_ins(
        &mut self,
        availability: &HashMap<ReferentIndex, Availability>,
        referents: &Referents<'_>,
    ) {
        let absent = |index: &ReferentIndex, date: Date| {
            availability
                .get(index)
                .is_some_and(|a| a.absences.iter().any(|absence| absence.covers(date)))
        };
        for &(index, network, position, raw) in &referents.pending {
            let Some(entry) = availability.get(&index) else {
                continue;
            };
            let fallbacks = referents
                .fallback
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
    }

    /// The registry of a file without errors.
    fn assemble(
        self,
        referents: Referents<'_>,
        routes: Routes,
        publishers: Publishers,
        availability: HashMap<ReferentIndex, Availability>,
    ) -> Registry {
        let Referents {
            list,
            coverage,
            mut fallback,
            ..
        } = referents;
        let fallback = (0..self.networks.len())
            .map(|n| fallback.remove(&(n as NetworkIndex)).unwrap_or_default())
            .collect();
        Registry {
            referents: list,
            networks: self.networks.iter().map(|n| n.to_string()).collect(),
            routes: routes.by_kind,
            labels: routes.labels,
            authors: routes.authors,
            any_kind: routes.any_kind,
            escalations: routes.escalations,
            by_commune: Index::new(coverage.communes),
            by_epci: Index::new(coverage.epcis),
            by_departement: Index::new(coverage.departements),
            by_region: Index::new(coverage.regions),
            fallback,
            publishers,
            geography: self.geography,
            availability,
            openings: Openings::default(),
            version: None,
            digest: String::new(),
        }
    }

    /// The opening hours the networks and référents declare.
    fn openings(
        &mut self,
        raws: &[RawReferent<'_>],
        referents: &Referents<'_>,
        networks: &[RawNetwork],
    ) -> Openings {
        let mut openings = Openings {
            networks: office_hours::networks(networks, &self.networks, &mut self.errors),
            referents: HashMap::new(),
        };
        for (position, raw) in raws.iter().enumerate() {
            if raw.hours.is_none() && raw.time_zone.is_none() {
                continue;
            }
            let at = At(position + 1, &raw.id);
            let opening = office_hours::opening(
                &at,
                raw.hours.as_ref(),
                raw.time_zone.as_deref(),
                &mut self.errors,
            );
            if let (Some(opening), Some((index, _))) = (opening, referents.by_id.get(&*raw.id)) {
                openings.referents.insert(*index, opening);
            }
        }
        openings
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

    /// The file's `version` label: one line of printable characters, short
    /// enough to sit in a log line or a metric's label.
    fn check_version(&mut self, version: &str) {
        if version.trim().is_empty()
            || version.chars().count() > VERSION_MAX
            || version.chars().any(char::is_control)
        {
            self.errors.push(format!(
                "`version` must be one line of 1 to {VERSION_MAX} printable characters \
                 (e.g. \"2026-12-06 UNCCAS\")"
            ));
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
