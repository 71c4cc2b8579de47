//! What a registry covers, counted per network, for `relais check` and the
//! metrics. It reads a built registry and never changes it.

use std::collections::BTreeMap;

use super::{ANY_KIND, NetworkIndex, Registry};

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

impl Registry {
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

    pub(super) fn network_names(&self, networks: &[NetworkIndex]) -> Vec<String> {
        networks
            .iter()
            .map(|&n| self.networks[usize::from(n)].clone())
            .collect()
    }
}
