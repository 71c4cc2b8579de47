//! The communes whose recipients change: every unit of the geography
//! resolved once per network and registry through the indexes, compared by
//! référent id, then read per routed kind.

use std::collections::BTreeSet;

use super::{CommuneChange, RecipientChanges, Recipients, kinds};
use crate::geography::Location;
use crate::registry::{Level, NetworkIndex, ReferentIndex, Registry};
use crate::territory::Commune;

/// A commune of the geography, resolved once for both registries.
struct Unit<'g> {
    commune: Commune,
    name: &'g str,
    population: u32,
    location: Location,
}

/// A network's référents for a commune, and at which level.
type Found<'r> = Option<(Level, &'r [ReferentIndex])>;

/// Per network and kind, the communes whose recipients change.
pub(super) fn recipients(old: &Registry, new: &Registry) -> Vec<RecipientChanges> {
    let geography = &*new.geography;
    let units: Vec<Unit<'_>> = geography
        .units()
        .filter_map(|unit| {
            let territory = geography
                .territory(Some(unit.commune.as_str()), None)
                .ok()?;
            Some(Unit {
                commune: unit.commune,
                name: unit.name,
                population: unit.population,
                location: geography.location(territory),
            })
        })
        .collect();
    let networks: BTreeSet<&str> = old
        .networks
        .iter()
        .chain(&new.networks)
        .map(String::as_str)
        .collect();
    let kinds = kinds(old, new);
    let mut changes = Vec::new();
    for network in networks {
        let (old_index, old_found) = side(old, network, &units);
        let (new_index, new_found) = side(new, network, &units);
        // Where this network's recipients differ, whatever the kind.
        let differ: Vec<usize> = (0..units.len())
            .filter(|&unit| !same(old, old_found[unit], new, new_found[unit]))
            .collect();
        for kind in &kinds {
            let routed_old = old_index.is_some_and(|n| old.routes_to(kind, n));
            let routed_new = new_index.is_some_and(|n| new.routes_to(kind, n));
            let recipients = |registry: &Registry, found: Found<'_>| {
                found.map(|(level, referents)| Recipients {
                    level,
                    referents: referents
                        .iter()
                        .map(|&r| registry.referents[r as usize].id().to_string())
                        .collect(),
                })
            };
            let change = |unit: usize| {
                let before = routed_old.then_some(old_found[unit]).flatten();
                let after = routed_new.then_some(new_found[unit]).flatten();
                (before.is_some() || after.is_some()).then(|| CommuneChange {
                    commune: units[unit].commune,
                    name: units[unit].name.to_owned(),
                    population: units[unit].population,
                    old: recipients(old, before),
                    new: recipients(new, after),
                })
            };
            let communes: Vec<CommuneChange> = match (routed_old, routed_new) {
                (false, false) => continue,
                (true, true) => differ.iter().filter_map(|&unit| change(unit)).collect(),
                _ => (0..units.len()).filter_map(change).collect(),
            };
            if !communes.is_empty() {
                changes.push(RecipientChanges {
                    network: network.to_owned(),
                    kind: kind.clone(),
                    communes,
                });
            }
        }
    }
    changes
}

/// The index of `network` in `registry`, and its référents for each unit.
fn side<'r>(
    registry: &'r Registry,
    network: &str,
    units: &[Unit<'_>],
) -> (Option<NetworkIndex>, Vec<Found<'r>>) {
    let index = registry.network_index(network);
    let found = match index {
        Some(index) => units
            .iter()
            .map(|unit| registry.match_network(index, &unit.location))
            .collect(),
        None => vec![None; units.len()],
    };
    (index, found)
}

/// Whether two findings name the same référents (by id, in any order).
fn same(old: &Registry, before: Found<'_>, new: &Registry, after: Found<'_>) -> bool {
    let (before, after) = match (before, after) {
        (None, None) => return true,
        (Some((_, before)), Some((_, after))) if before.len() == after.len() => (before, after),
        _ => return false,
    };
    fn id<'r>(registry: &'r Registry, index: &ReferentIndex) -> &'r str {
        registry.referents[*index as usize].id().as_str()
    }
    if before
        .iter()
        .zip(after)
        .all(|(b, a)| id(old, b) == id(new, a))
    {
        return true;
    }
    let mut before: Vec<&str> = before.iter().map(|i| id(old, i)).collect();
    let mut after: Vec<&str> = after.iter().map(|i| id(new, i)).collect();
    before.sort_unstable();
    after.sort_unstable();
    before == after
}
