//! France's official geography, as INSEE publishes it (the Code officiel
//! géographique) and Etalab packages it every year: which commune codes
//! exist, what each is called, which EPCI (intercommunalité à fiscalité
//! propre), département and région it belongs to, and what became of the
//! codes that no longer name a commune.
//!
//! It is read once, at start-up, from the territories file that
//! `scripts/territories` generates (`data/territories.tsv`, compiled into
//! relais, or a newer file the settings name; its format is in
//! `docs/territories.md`; reading it is `file`'s). An alert's commune code
//! is read against it ([`Geography::territory`]): a current commune or an
//! arrondissement municipal is itself; a commune déléguée or associée is its
//! chef-lieu's commune; a code that survives only as a former code of a
//! commune is that commune, unless it is also a postal code in use (`75013`
//! is Paris 13e's postal code and the pre-1968 code of Le Bourget): then,
//! like any other code, it is refused. The registry's codes are checked
//! against it too, and the emails name places with it.
//!
//! Lookups are binary searches in sorted vectors: a few hundred nanoseconds
//! at most, and about 2 MB for the whole of France.

mod areas;
mod file;
mod search;
#[cfg(test)]
pub(crate) mod tests;

pub use areas::{Epci, Region};
pub use file::{GeographyError, Origin};
pub use search::{CommuneNames, normalise};

use crate::territory::{
    Commune, Departement, Mapped, MappedCode, Mapping, Territory, TerritoryError,
};

/// A commune code as an alert may give it: five characters, not
/// necessarily a current commune's (a former Corsican code starts `20`).
type Code = [u8; 5];

/// A name, as a range of [`Geography::names`].
#[derive(Clone, Copy, Debug)]
struct Name {
    start: u32,
    len: u8,
}

/// No index: a commune outside every EPCI, a commune that is not an
/// arrondissement.
const NONE: u16 = u16::MAX;

/// A current commune or an arrondissement municipal: 16 bytes, about
/// 35,000 of them.
#[derive(Debug)]
struct Place {
    commune: Commune,
    name_len: u8,
    /// Index in `epcis` (of the commune, for an arrondissement), or [`NONE`].
    epci: u16,
    name_start: u32,
    /// For an arrondissement municipal, the index of its commune in
    /// `places`; [`NONE`] for a commune.
    parent: u16,
}

impl Place {
    fn name(&self) -> Name {
        Name {
            start: self.name_start,
            len: self.name_len,
        }
    }
}

/// A commune déléguée or associée whose code is no current commune's.
#[derive(Debug)]
struct Linked {
    code: Code,
    name: Name,
    /// Index of its chef-lieu's current commune in `places`.
    place: u32,
}

#[derive(Debug)]
struct Area<C> {
    code: C,
    name: Name,
}

/// The official geography of one millésime.
#[derive(Debug)]
pub struct Geography {
    millesime: u16,
    source: String,
    origin: Origin,
    /// Every name, end to end.
    names: String,
    /// Sorted by code.
    places: Vec<Place>,
    /// Each place's population, in the same order; empty once forgotten.
    populations: Vec<u32>,
    linked: Vec<Linked>,
    /// Former codes, and the index of their commune in `places`.
    former: Vec<(Code, u32)>,
    /// Postal codes in use that are no INSEE code.
    postal: Vec<Code>,
    /// (postal code, index in `places` of a commune it serves), sorted;
    /// empty once forgotten (only `relais registry import` reads it).
    postal_communes: Vec<(Code, u16)>,
    departements: Vec<(Area<Departement>, Region)>,
    regions: Vec<Area<Region>>,
    epcis: Vec<Area<Epci>>,
}

/// Where a territory lies, as the registry resolves it: most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The arrondissement municipal, when the alert gave one.
    pub arrondissement: Option<Commune>,
    /// The commune (an arrondissement's commune).
    pub commune: Option<Commune>,
    pub epci: Option<Epci>,
    pub departement: Departement,
    pub region: Option<Region>,
}

/// A commune, as many as a report needs: code, name, population.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommuneInfo<'g> {
    pub commune: Commune,
    pub name: &'g str,
    pub population: u32,
}

impl Geography {
    /// Forgets the communes' populations, which only reports use
    /// (`relais coverage`): 140 KB less for the daemon.
    pub fn forget_populations(&mut self) {
        self.populations = Vec::new();
    }

    /// Forgets which communes each postal code serves, which only
    /// `relais registry import` reads: 280 KB less for the daemon.
    pub fn forget_postal_communes(&mut self) {
        self.postal_communes = Vec::new();
    }

    /// The millésime, e.g. 2026: the year of the Code officiel géographique.
    pub fn millesime(&self) -> u16 {
        self.millesime
    }

    /// Where the data came from, e.g. `@etalab/decoupage-administratif@6.0.0`.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn name(&self, name: Name) -> &str {
        let start = name.start as usize;
        self.names
            .get(start..start + usize::from(name.len))
            .unwrap_or_default()
    }

    fn place(&self, code: &[u8]) -> Option<(usize, &Place)> {
        let index = self
            .places
            .binary_search_by(|place| place.commune.as_str().as_bytes().cmp(code))
            .ok()?;
        Some((index, &self.places[index]))
    }

    /// The territory an alert names: its commune code read as the module
    /// says, and its département (given alone, or checked against the
    /// commune's).
    ///
    /// # Errors
    /// [`TerritoryError`]: a code of the wrong shape, one the geography does
    /// not know (a postal code said as such), a département that is not the
    /// commune's, or neither part.
    pub fn territory(
        &self,
        commune: Option<&str>,
        departement: Option<&str>,
    ) -> Result<Territory, TerritoryError> {
        let departement = departement
            .map(|code| {
                Departement::parse(code)
                    .ok()
                    .filter(|d| self.departement_index(*d).is_some())
                    .ok_or(TerritoryError::Departement)
            })
            .transpose()?;
        let Some(code) = commune else {
            return Territory::new(None, departement, None);
        };
        let (commune, mapped) = self.locate(code)?;
        Territory::new(Some(commune), departement, mapped)
    }

    /// The current commune (or arrondissement) a code names.
    fn locate(&self, code: &str) -> Result<(Commune, Option<Mapped>), TerritoryError> {
        // The shape of a commune code; `20` only begins a former Corsican
        // code (before 2A and 2B).
        let former_corsican = code.len() == 5
            && code.starts_with("20")
            && code[2..].bytes().all(|b| b.is_ascii_digit());
        if Commune::parse(code).is_err() && !former_corsican {
            return Err(TerritoryError::Commune);
        }
        let bytes: Code = code
            .as_bytes()
            .try_into()
            .map_err(|_| TerritoryError::Commune)?;
        if let Some((_, place)) = self.place(&bytes) {
            return Ok((place.commune, None));
        }
        let mapped = |index: u32, how| {
            let commune = self.places[index as usize].commune;
            let mapped = Mapped {
                from: MappedCode(bytes),
                how,
            };
            (commune, Some(mapped))
        };
        if let Ok(found) = self.linked.binary_search_by(|l| l.code.cmp(&bytes)) {
            return Ok(mapped(self.linked[found].place, Mapping::Delegated));
        }
        if let Ok(found) = self.former.binary_search_by(|f| f.0.cmp(&bytes)) {
            return Ok(mapped(self.former[found].1, Mapping::Former));
        }
        if self.postal.binary_search(&bytes).is_ok() {
            return Err(TerritoryError::PostalCode);
        }
        Err(TerritoryError::Unknown {
            millesime: self.millesime,
        })
    }

    /// Whether `commune` is a current commune or an arrondissement
    /// municipal; otherwise what the registry should list instead.
    ///
    /// # Errors
    /// What the code is, and the code to use instead when there is one.
    pub fn check_current(&self, code: &str) -> Result<Commune, String> {
        match self.locate(code) {
            Ok((commune, None)) => Ok(commune),
            Ok((commune, Some(mapped))) => {
                let what = match mapped.how {
                    Mapping::Delegated => "a commune déléguée or associée",
                    Mapping::Former => "a former code",
                };
                Err(format!(
                    "is {what} of {} ({commune}): list {commune} instead",
                    self.commune_name(commune).unwrap_or_default()
                ))
            }
            Err(error) => Err(error.to_string()),
        }
    }

    /// Whether the département exists in this geography.
    pub fn has_departement(&self, departement: Departement) -> bool {
        self.departement_index(departement).is_some()
    }

    fn departement_index(&self, departement: Departement) -> Option<usize> {
        self.departements
            .binary_search_by(|(area, _)| area.code.cmp(&departement))
            .ok()
    }

    pub fn has_region(&self, region: Region) -> bool {
        self.regions
            .binary_search_by(|area| area.code.cmp(&region))
            .is_ok()
    }

    pub fn has_epci(&self, epci: Epci) -> bool {
        self.epci_index(epci).is_some()
    }

    fn epci_index(&self, epci: Epci) -> Option<usize> {
        self.epcis
            .binary_search_by(|area| area.code.cmp(&epci))
            .ok()
    }

    /// Where a territory lies, every level filled in that applies.
    pub fn location(&self, territory: Territory) -> Location {
        let departement = territory.departement();
        let region = self
            .departement_index(departement)
            .map(|index| self.departements[index].1);
        let mut location = Location {
            arrondissement: None,
            commune: None,
            epci: None,
            departement,
            region,
        };
        let Some((_, place)) = territory
            .commune()
            .and_then(|commune| self.place(commune.as_str().as_bytes()))
        else {
            location.commune = territory.commune();
            return location;
        };
        let commune = match place.parent {
            NONE => place,
            parent => {
                location.arrondissement = Some(place.commune);
                &self.places[parent as usize]
            }
        };
        location.commune = Some(commune.commune);
        location.epci = (commune.epci != NONE).then(|| self.epcis[commune.epci as usize].code);
        location
    }

    /// The name of a current commune or an arrondissement.
    pub fn commune_name(&self, commune: Commune) -> Option<&str> {
        self.place(commune.as_str().as_bytes())
            .map(|(_, place)| self.name(place.name()))
    }

    /// The name of a commune déléguée or associée given as `code`.
    pub fn linked_name(&self, code: MappedCode) -> Option<&str> {
        let found = self.linked.binary_search_by(|l| l.code.cmp(&code.0)).ok()?;
        Some(self.name(self.linked[found].name))
    }

    pub fn departement_name(&self, departement: Departement) -> Option<&str> {
        self.departement_index(departement)
            .map(|index| self.name(self.departements[index].0.name))
    }

    pub fn region_name(&self, region: Region) -> Option<&str> {
        let index = self
            .regions
            .binary_search_by(|area| area.code.cmp(&region))
            .ok()?;
        Some(self.name(self.regions[index].name))
    }

    pub fn epci_name(&self, epci: Epci) -> Option<&str> {
        self.epci_index(epci)
            .map(|index| self.name(self.epcis[index].name))
    }

    /// The units that together cover France once: every current commune
    /// without arrondissements, and every arrondissement municipal in place
    /// of its commune (Paris, Lyon, Marseille), in code order.
    pub fn units(&self) -> impl Iterator<Item = CommuneInfo<'_>> {
        let mut divided: Vec<u16> = self
            .places
            .iter()
            .filter(|place| place.parent != NONE)
            .map(|place| place.parent)
            .collect();
        divided.sort_unstable();
        divided.dedup();
        self.places
            .iter()
            .enumerate()
            .filter(move |(index, _)| divided.binary_search(&(*index as u16)).is_err())
            .map(|(index, place)| CommuneInfo {
                commune: place.commune,
                name: self.name(place.name()),
                population: self.populations.get(index).copied().unwrap_or(0),
            })
    }

    /// How an alert's territory is named to people: `Paris 13e
    /// Arrondissement (75113)`, `Ain (01)` for a département alone.
    pub fn describe(&self, territory: Territory) -> Description {
        let departement = territory.departement();
        let departement_name = self.departement_name(departement).unwrap_or_default();
        let departement_text = format!("{departement_name} ({departement})");
        let place = match territory.commune() {
            Some(commune) => format!(
                "{} ({commune})",
                self.commune_name(commune).unwrap_or("commune")
            ),
            None => departement_text.clone(),
        };
        let mapped = territory.mapped().map(|mapped| {
            let current = territory
                .commune()
                .map(|c| self.commune_name(c).unwrap_or_default().to_owned())
                .unwrap_or_default();
            match (mapped.how, self.linked_name(mapped.from)) {
                (Mapping::Delegated, Some(name)) => format!(
                    "l'alerte donnait le code {} ({name}, commune déléguée ou associée), désormais {current}",
                    mapped.from
                ),
                _ => format!(
                    "l'alerte donnait l'ancien code {}, désormais {current}",
                    mapped.from
                ),
            }
        });
        Description {
            place,
            departement: departement_text,
            mapped,
        }
    }
}

/// A territory in words, for the emails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// `Paris 13e Arrondissement (75113)`, or the département's words.
    pub place: String,
    /// `Paris (75)`.
    pub departement: String,
    /// When the alert's code was read as another commune, what it said.
    pub mapped: Option<String>,
}
