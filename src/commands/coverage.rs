//! What a registry covers of France, for `relais coverage`: per network,
//! how many communes and what share of the population each level of the
//! rule would serve, and, per département, the communes that only a
//! fallback référent (or nobody) would serve. An operator sees the gaps of
//! a registry before the first alert falls into one.
//!
//! The units are those that cover France once: every current commune, with
//! Paris, Lyon and Marseille counted by arrondissement municipal. Each is
//! resolved as an alert about it would be today, with today's absences
//! (the registry's and those the référents declared): a commune whose
//! référents are all away with no deputy present counts as served by the
//! fallback.
//!
//! It reads the settings, the registry, the geography and the declared
//! absences (from the store, when there is one), and nothing else: never
//! the broker.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::bail;
use clap::Args;
use serde::Serialize;

use time::{Date, OffsetDateTime};

use super::registry::RegistryFile;
use crate::availability::paris_date;
use crate::geography::Geography;
use crate::registry::{ExtraAbsences, Level, Registry, StandIn};
use crate::settings::Settings;
use crate::territory::Departement;

/// Which networks `relais coverage` reports on, and how it prints.
#[derive(Debug, Args)]
pub struct CoverageArgs {
    /// Only this network, e.g. ccas.
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// Print JSON, for scripts: every commune of every gap.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryFile,
}

/// `relais coverage`: what the registry covers of France.
pub(super) async fn coverage(config: Option<&Path>, args: &CoverageArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let geography = super::load_geography(&settings)?;
    let registry = Registry::load(args.registry.path(&settings), &geography)?;
    if let Some(network) = &args.network
        && !registry.summary().networks.contains_key(network)
    {
        bail!("--network {network:?} has no référent in the registry");
    }
    let now = OffsetDateTime::now_utc();
    let today = paris_date(now);
    let declared = match super::absences::declared(&settings, today, now).await {
        Ok(declared) => crate::absences::extra(declared),
        Err(error) => {
            eprintln!(
                "relais: the declared absences cannot be read ({error}): the registry's absences only"
            );
            ExtraAbsences::default()
        }
    };
    let coverage = Coverage::of(
        &registry,
        &geography,
        args.network.as_deref(),
        today,
        &declared,
    );
    if args.json {
        println!("{}", serde_json::to_string(&coverage)?);
    } else {
        print!("{}", coverage.text());
    }
    Ok(())
}

/// The coverage of one registry.
#[derive(Debug, Serialize)]
pub struct Coverage {
    pub millesime: u16,
    /// The day the communes are resolved for (Paris), `YYYY-MM-DD`.
    pub date: String,
    /// The référents away that day (the registry's absences and the
    /// declared ones), of the networks reported.
    pub absent: usize,
    /// Communes and arrondissements municipaux.
    pub communes: usize,
    pub population: u64,
    pub networks: Vec<NetworkCoverage>,
}

#[derive(Debug, Serialize)]
pub struct NetworkCoverage {
    pub network: String,
    /// Per level (`arrondissement` … `fallback`, and `none`), what it serves.
    pub levels: BTreeMap<&'static str, Share>,
    /// Per département, the communes only a fallback référent would serve.
    pub fallback_only: Vec<DepartementGap>,
    /// Per département, the communes nobody would serve: an alert about
    /// one would be dead-lettered as `unroutable`.
    pub unserved: Vec<DepartementGap>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Share {
    pub communes: usize,
    pub population: u64,
}

#[derive(Debug, Serialize)]
pub struct DepartementGap {
    pub departement: String,
    pub name: String,
    pub communes: Vec<CommuneName>,
}

#[derive(Debug, Serialize)]
pub struct CommuneName {
    pub code: String,
    pub name: String,
}

/// The level name of a commune nobody serves.
pub const NONE: &str = "none";

impl Coverage {
    /// Resolves every commune of `geography` against `registry` as an
    /// alert of `date` would be (with the registry's absences and
    /// `declared`), for the networks `only` names (all when `None`).
    pub fn of(
        registry: &Registry,
        geography: &Geography,
        only: Option<&str>,
        date: Date,
        declared: &ExtraAbsences,
    ) -> Self {
        let mut networks: BTreeMap<String, Tally> = BTreeMap::new();
        let (mut communes, mut population) = (0, 0u64);
        for unit in geography.units() {
            let Ok(territory) = geography.territory(Some(unit.commune.as_str()), None) else {
                continue;
            };
            communes += 1;
            population += u64::from(unit.population);
            let location = geography.location(territory);
            for (network, level) in registry.level_per_network_on(&location, date, declared) {
                if only.is_some_and(|only| only != network) {
                    continue;
                }
                let tally = networks.entry(network.to_owned()).or_default();
                let name = level.map_or(NONE, Level::as_str);
                let share = tally.levels.entry(name).or_default();
                share.communes += 1;
                share.population += u64::from(unit.population);
                let gap = match level {
                    Some(Level::Fallback) => &mut tally.fallback_only,
                    None => &mut tally.unserved,
                    Some(_) => continue,
                };
                gap.entry(unit.commune.departement())
                    .or_default()
                    .push(CommuneName {
                        code: unit.commune.to_string(),
                        name: unit.name.to_owned(),
                    });
            }
        }
        let gaps = |by: BTreeMap<Departement, Vec<CommuneName>>| {
            by.into_iter()
                .map(|(departement, communes)| DepartementGap {
                    departement: departement.to_string(),
                    name: geography
                        .departement_name(departement)
                        .unwrap_or_default()
                        .to_owned(),
                    communes,
                })
                .collect()
        };
        let networks = networks
            .into_iter()
            .map(|(network, mut tally)| {
                for level in Level::ALL.map(Level::as_str).into_iter().chain([NONE]) {
                    tally.levels.entry(level).or_default();
                }
                NetworkCoverage {
                    network,
                    levels: tally.levels,
                    fallback_only: gaps(tally.fallback_only),
                    unserved: gaps(tally.unserved),
                }
            })
            .collect();
        let absent = registry
            .referents()
            .iter()
            .filter(|r| only.is_none_or(|only| only == r.network()))
            .filter(|r| !matches!(registry.stand_in(r, date, declared), StandIn::Present))
            .count();
        Self {
            millesime: geography.millesime(),
            date: date.to_string(),
            absent,
            communes,
            population,
            networks,
        }
    }

    /// The report for a terminal: the shares per level, then per
    /// département the communes in the gaps (named when there are a few).
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "official geography, millésime {}: {} communes and arrondissements, {} inhabitants",
            self.millesime, self.communes, self.population
        );
        if self.absent > 0 {
            let _ = writeln!(
                out,
                "on {} (Paris), {} référent(s) away (the registry's absences and the declared \
                 ones): their communes are counted as that day's alerts would be served",
                self.date, self.absent
            );
        }
        let percent = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 * 100.0 / whole as f64
            }
        };
        for network in &self.networks {
            let _ = writeln!(out, "network {}", network.network);
            let order = Level::ALL.map(Level::as_str).into_iter().chain([NONE]);
            for level in order {
                let share = network.levels.get(level).copied().unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {level:<15} {:>6} communes  {:>5.1}% of the population",
                    share.communes,
                    percent(share.population, self.population)
                );
            }
            for (title, gaps) in [
                ("only a fallback référent", &network.fallback_only),
                ("nobody (unroutable)", &network.unserved),
            ] {
                if gaps.is_empty() {
                    continue;
                }
                let _ = writeln!(out, "  communes served by {title}, per département:");
                for gap in gaps {
                    let _ = write!(
                        out,
                        "    {} {}: {} commune(s)",
                        gap.departement,
                        gap.name,
                        gap.communes.len()
                    );
                    if gap.communes.len() <= NAMED {
                        let names: Vec<String> = gap
                            .communes
                            .iter()
                            .map(|c| format!("{} {}", c.code, c.name))
                            .collect();
                        let _ = write!(out, ": {}", names.join(", "));
                    }
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// Up to this many communes of a gap are named in the text report (all of
/// them are in `--json`).
const NAMED: usize = 5;

#[derive(Default)]
struct Tally {
    levels: BTreeMap<&'static str, Share>,
    fallback_only: BTreeMap<Departement, Vec<CommuneName>>,
    unserved: BTreeMap<Departement, Vec<CommuneName>>,
}
