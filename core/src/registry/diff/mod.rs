//! What a registry change does before it is live, for `relais registry
//! diff`: the référents added, removed and changed (by id), the routes
//! and the publishers changed, and, per network and routed kind, every
//! commune whose recipients change. It reads two built registries and
//! never changes them.
//!
//! Recipients are who the registry names for a commune, by the rule (the
//! arrondissement municipal, the commune, its EPCI, its département, its
//! région, the network's fallback), before anyone's absence: an absence
//! lasts days, a registry change lasts until the next. Each commune is
//! resolved once per network and registry through the indexes, not once
//! per kind: a national registry is compared in well under a second.
//! That part is `recipients`; this file compares the entries.

mod recipients;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{ANY_KIND, EscalateAfter, Level, NetworkIndex, Referent, ReferentIndex, Registry};
use crate::territory::Commune;

/// What changes from one registry to another.
#[derive(Debug, Default)]
pub struct RegistryDiff {
    /// Référents only the new registry has, by id.
    pub added: Vec<ReferentEntry>,
    /// Référents only the old registry has, by id.
    pub removed: Vec<ReferentEntry>,
    /// Référents of both whose entry changed, by id.
    pub changed: Vec<ReferentChange>,
    /// Routes added, removed or changed, by kind (`*` last).
    pub routes: Vec<RouteChange>,
    /// Publishers added, removed or changed, by user.
    pub publishers: Vec<PublisherChange>,
    /// Per network and kind (in that order), the communes whose
    /// recipients change; only those with any.
    pub recipients: Vec<RecipientChanges>,
}

/// A référent by id, with its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferentEntry {
    pub id: String,
    pub network: String,
}

/// What changed in the entry of a référent both registries have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferentChange {
    pub id: String,
    /// In this order: network, email, phone, name, organisation,
    /// communes, epcis, departements, regions, deputies, fallback,
    /// absences.
    pub fields: Vec<FieldChange>,
}

/// One field's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldChange {
    /// A value, before and after (`None`: not given). Deputies are their
    /// ids joined by `, `, absences their `from..to` spans, the fallback
    /// `yes` or `no`.
    Value {
        field: &'static str,
        old: Option<String>,
        new: Option<String>,
    },
    /// Territory codes covered, added and removed (sorted).
    Territories {
        field: &'static str,
        added: Vec<String>,
        removed: Vec<String>,
    },
}

impl FieldChange {
    pub fn field(&self) -> &'static str {
        match self {
            Self::Value { field, .. } | Self::Territories { field, .. } => field,
        }
    }
}

/// A route's change: one of its settings, before and after (`None`: the
/// kind has no route, or the route does not set it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChange {
    pub kind: String,
    /// `networks`, `label`, `author` or `escalate_after`.
    pub field: &'static str,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A `[[publisher]]` added, removed or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherChange {
    /// Its RabbitMQ user.
    pub user: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// Its fields that differ (every field, for one added or removed):
    /// `association`, `territories`, `kinds`, `author`, `contact`, each a
    /// [`FieldChange::Value`].
    pub fields: Vec<FieldChange>,
}

/// The communes whose recipients change for one network and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientChanges {
    pub network: String,
    /// A routed kind, or `*` for the kinds without a route of their own.
    pub kind: String,
    /// In code order.
    pub communes: Vec<CommuneChange>,
}

/// One commune whose recipients change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommuneChange {
    /// A commune, or an arrondissement municipal of Paris, Lyon or
    /// Marseille.
    pub commune: Commune,
    pub name: String,
    pub population: u32,
    /// `None`: nobody of the network receives (no route, or no référent).
    pub old: Option<Recipients>,
    pub new: Option<Recipients>,
}

/// Who a network's alerts about a commune go to, and at which level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipients {
    pub level: Level,
    /// Référent ids, in registry order.
    pub referents: Vec<String>,
}

impl RegistryDiff {
    /// What changes from `old` to `new`. Both must have been checked
    /// against the same geography: its communes are those compared.
    pub fn between(old: &Registry, new: &Registry) -> Self {
        let (added, removed, changed) = referents(old, new);
        Self {
            added,
            removed,
            changed,
            routes: routes(old, new),
            publishers: publishers(old, new),
            recipients: recipients::recipients(old, new),
        }
    }

    /// Whether nothing that decides who receives what changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.routes.is_empty()
            && self.publishers.is_empty()
            && self.recipients.is_empty()
    }

    /// How many distinct communes change recipients (for any network or
    /// kind), and their population.
    pub fn communes_changed(&self) -> (usize, u64) {
        let mut seen = BTreeMap::new();
        for change in self.recipients.iter().flat_map(|r| &r.communes) {
            seen.insert(change.commune, change.population);
        }
        (seen.len(), seen.values().map(|&p| u64::from(p)).sum())
    }
}

/// The référents added, removed and changed, each list by id.
fn referents(
    old: &Registry,
    new: &Registry,
) -> (Vec<ReferentEntry>, Vec<ReferentEntry>, Vec<ReferentChange>) {
    let entry = |referent: &Referent| ReferentEntry {
        id: referent.id().to_string(),
        network: referent.network().to_owned(),
    };
    let old_ids: HashMap<&str, usize> = ids(old);
    let new_ids: HashMap<&str, usize> = ids(new);
    let mut added: Vec<ReferentEntry> = new
        .referents
        .iter()
        .filter(|r| !old_ids.contains_key(r.id().as_str()))
        .map(entry)
        .collect();
    let mut removed: Vec<ReferentEntry> = old
        .referents
        .iter()
        .filter(|r| !new_ids.contains_key(r.id().as_str()))
        .map(entry)
        .collect();
    let (old_covers, new_covers) = (Covers::of(old), Covers::of(new));
    let mut changed: Vec<ReferentChange> = old_ids
        .iter()
        .filter_map(|(id, &before)| {
            let after = *new_ids.get(id)?;
            let fields = fields((old, &old_covers, before), (new, &new_covers, after));
            (!fields.is_empty()).then(|| ReferentChange {
                id: (*id).to_owned(),
                fields,
            })
        })
        .collect();
    added.sort_by(|a, b| a.id.cmp(&b.id));
    removed.sort_by(|a, b| a.id.cmp(&b.id));
    changed.sort_by(|a, b| a.id.cmp(&b.id));
    (added, removed, changed)
}

fn ids(registry: &Registry) -> HashMap<&str, usize> {
    registry
        .referents
        .iter()
        .enumerate()
        .map(|(index, r)| (r.id().as_str(), index))
        .collect()
}

/// Each référent's territory codes, sorted, by level: the registry keeps
/// référents by territory, this turns it round.
struct Covers {
    /// Per référent index: communes, EPCI, départements, régions.
    codes: Vec<[Vec<String>; 4]>,
}

impl Covers {
    fn of(registry: &Registry) -> Self {
        let mut codes: Vec<[Vec<String>; 4]> = vec![Default::default(); registry.referents.len()];
        let mut add = |level: usize, referents: &[ReferentIndex], code: String| {
            for &referent in referents {
                codes[referent as usize][level].push(code.clone());
            }
        };
        for (key, found) in registry.by_commune.entries() {
            add(0, found, key.1.to_string());
        }
        for (key, found) in registry.by_epci.entries() {
            add(1, found, key.1.to_string());
        }
        for (key, found) in registry.by_departement.entries() {
            add(2, found, key.1.to_string());
        }
        for (key, found) in registry.by_region.entries() {
            add(3, found, key.1.to_string());
        }
        for levels in &mut codes {
            levels.iter_mut().for_each(|list| list.sort_unstable());
        }
        Self { codes }
    }
}

/// A référent's fields that differ between its two entries, in the order
/// [`ReferentChange::fields`] gives.
fn fields(
    (old, old_covers, before): (&Registry, &Covers, usize),
    (new, new_covers, after): (&Registry, &Covers, usize),
) -> Vec<FieldChange> {
    let (a, b) = (&old.referents[before], &new.referents[after]);
    let mut changes = Vec::new();
    let mut value = |field: &'static str, old: Option<String>, new: Option<String>| {
        if old != new {
            changes.push(FieldChange::Value { field, old, new });
        }
    };
    value(
        "network",
        Some(a.network().to_owned()),
        Some(b.network().to_owned()),
    );
    value(
        "email",
        Some(a.email().to_string()),
        Some(b.email().to_string()),
    );
    value(
        "phone",
        a.phone().map(ToString::to_string),
        b.phone().map(ToString::to_string),
    );
    value(
        "name",
        a.name().map(str::to_owned),
        b.name().map(str::to_owned),
    );
    value(
        "organisation",
        a.organisation().map(str::to_owned),
        b.organisation().map(str::to_owned),
    );
    for (level, field) in ["communes", "epcis", "departements", "regions"]
        .into_iter()
        .enumerate()
    {
        let (was, is) = (
            &old_covers.codes[before][level],
            &new_covers.codes[after][level],
        );
        if was != is {
            changes.push(FieldChange::Territories {
                field,
                added: is
                    .iter()
                    .filter(|c| was.binary_search(c).is_err())
                    .cloned()
                    .collect(),
                removed: was
                    .iter()
                    .filter(|c| is.binary_search(c).is_err())
                    .cloned()
                    .collect(),
            });
        }
    }
    let mut value = |field: &'static str, old: Option<String>, new: Option<String>| {
        if old != new {
            changes.push(FieldChange::Value { field, old, new });
        }
    };
    value("deputies", deputies(old, before), deputies(new, after));
    value(
        "fallback",
        Some(yes_no(is_fallback(old, before))),
        Some(yes_no(is_fallback(new, after))),
    );
    value("absences", absences(old, before), absences(new, after));
    changes
}

fn deputies(registry: &Registry, index: usize) -> Option<String> {
    let availability = registry.availability.get(&(index as ReferentIndex))?;
    let ids: Vec<&str> = availability
        .deputies
        .iter()
        .map(|&d| registry.referents[d as usize].id().as_str())
        .collect();
    (!ids.is_empty()).then(|| ids.join(", "))
}

fn absences(registry: &Registry, index: usize) -> Option<String> {
    let availability = registry.availability.get(&(index as ReferentIndex))?;
    let spans: Vec<String> = availability
        .absences
        .iter()
        .map(|a| format!("{}..{}", a.from, a.to))
        .collect();
    (!spans.is_empty()).then(|| spans.join(", "))
}

fn is_fallback(registry: &Registry, index: usize) -> bool {
    let network = registry.network_index(registry.referents[index].network());
    network.is_some_and(|n| registry.fallback[usize::from(n)].contains(&(index as ReferentIndex)))
}

fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.to_owned()
}

/// Every kind either registry routes, sorted, then `*` if either has it.
fn kinds(old: &Registry, new: &Registry) -> Vec<String> {
    let mut kinds: BTreeSet<&str> = old.routes.keys().map(String::as_str).collect();
    kinds.extend(new.routes.keys().map(String::as_str));
    let mut kinds: Vec<String> = kinds.into_iter().map(str::to_owned).collect();
    if !old.any_kind.is_empty() || !new.any_kind.is_empty() {
        kinds.push(ANY_KIND.to_owned());
    }
    kinds
}

/// The routes' settings that differ, by kind.
fn routes(old: &Registry, new: &Registry) -> Vec<RouteChange> {
    let mut changes = Vec::new();
    for kind in kinds(old, new) {
        let settings = |registry: &Registry| -> [Option<String>; 4] {
            let networks = if kind == ANY_KIND {
                (!registry.any_kind.is_empty()).then_some(registry.any_kind.as_slice())
            } else {
                registry.routes.get(&kind).map(Vec::as_slice)
            };
            [
                networks.map(|n| registry.network_names(n).join(", ")),
                registry.labels.get(&kind).cloned(),
                registry.authors.get(&kind).cloned(),
                registry.escalations.get(&kind).map(escalation),
            ]
        };
        let (was, is) = (settings(old), settings(new));
        for (field, (old, new)) in ["networks", "label", "author", "escalate_after"]
            .into_iter()
            .zip(was.into_iter().zip(is))
        {
            if old != new {
                changes.push(RouteChange {
                    kind: kind.clone(),
                    field,
                    old,
                    new,
                });
            }
        }
    }
    changes
}

/// The publishers added, removed or changed, by user.
fn publishers(old: &Registry, new: &Registry) -> Vec<PublisherChange> {
    let (was, is) = (old.publishers.described(), new.publishers.described());
    let users: BTreeSet<&str> = was.keys().chain(is.keys()).copied().collect();
    users
        .into_iter()
        .filter_map(|user| {
            let (before, after) = (was.get(user), is.get(user));
            let change = match (before, after) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            let value = |fields: Option<&[(&'static str, String); 5]>, at: usize| {
                fields.map(|fields| fields[at].1.clone())
            };
            let fields: Vec<FieldChange> = (0..5)
                .filter_map(|at| {
                    let (old, new) = (value(before, at), value(after, at));
                    let field = before.or(after)?[at].0;
                    (old != new).then_some(FieldChange::Value { field, old, new })
                })
                .collect();
            (!fields.is_empty()).then(|| PublisherChange {
                user: user.to_owned(),
                change,
                fields,
            })
        })
        .collect()
}

fn escalation(escalate: &EscalateAfter) -> String {
    let wait = |wait: Option<std::time::Duration>| {
        wait.map_or_else(
            || "never".to_owned(),
            |wait| humantime::format_duration(wait).to_string(),
        )
    };
    format!(
        "urgent {}, normal {}",
        wait(escalate.urgent),
        wait(escalate.normal)
    )
}

impl Registry {
    /// Whether an alert of `kind` (`*`: a kind without a route of its own)
    /// goes to `network`, as resolution reads the routes.
    fn routes_to(&self, kind: &str, network: NetworkIndex) -> bool {
        self.any_kind.contains(&network)
            || (kind != ANY_KIND
                && self
                    .routes
                    .get(kind)
                    .is_some_and(|networks| networks.contains(&network)))
    }
}
