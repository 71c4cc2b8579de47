//! France's official geography, as INSEE publishes it (the Code officiel
//! géographique) and Etalab packages it every year: which commune codes
//! exist, what each is called, which EPCI (intercommunalité à fiscalité
//! propre), département and région it belongs to, and what became of the
//! codes that no longer name a commune.
//!
//! It is read once, at start-up, from the territories file that
//! `scripts/territories` generates (`data/territories.tsv`, shipped with
//! relais; its format is in `docs/territories.md`). An alert's commune code
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

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::territory::{
    Commune, Departement, Mapped, MappedCode, Mapping, Territory, TerritoryError,
};

/// Why a territories file was refused.
#[derive(Debug, Error)]
pub enum GeographyError {
    #[error("cannot read the territories file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the territories file {path} is not one scripts/territories wrote: line {line}: {problem}"
    )]
    Format {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// A région's INSEE code: two digits, or three for an overseas collectivité
/// that INSEE numbers like one (`975`, `977`, `978`, `984`, `986`-`989`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    code: [u8; 3],
    len: u8,
}

impl Region {
    /// Parses a région code's shape (whether it exists is the geography's
    /// to say).
    ///
    /// # Errors
    /// A description of the rule broken.
    pub fn parse(code: &str) -> Result<Self, String> {
        let bytes = code.as_bytes();
        if !(2..=3).contains(&bytes.len()) || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(
                "is not a région code (two digits, e.g. 84; three overseas, e.g. 975)".into(),
            );
        }
        let mut stored = [0; 3];
        stored[..bytes.len()].copy_from_slice(bytes);
        Ok(Self {
            code: stored,
            len: bytes.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.code[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// An EPCI à fiscalité propre (a communauté de communes, d'agglomération,
/// urbaine, or a métropole), by its SIREN number, e.g. `200046977`
/// (Métropole de Lyon).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epci(u32);

impl Epci {
    /// Parses a SIREN number's shape: nine digits.
    ///
    /// # Errors
    /// A description of the rule broken.
    pub fn parse(code: &str) -> Result<Self, String> {
        if code.len() != 9 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err("is not the SIREN number of an EPCI (nine digits, e.g. 200046977)".into());
        }
        code.parse()
            .map(Self)
            .map_err(|_| "is not a SIREN number".into())
    }
}

macro_rules! code_display {
    ($($type:ty),*) => {$(
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.as_str())
            }
        }
    )*};
}
code_display!(Region);

impl fmt::Display for Epci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:09}", self.0)
    }
}

impl fmt::Debug for Epci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

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
    /// Reads a territories file.
    ///
    /// # Errors
    /// [`GeographyError`] when the file cannot be read or is not in the
    /// format `scripts/territories` writes.
    pub fn load(path: &Path) -> Result<Self, GeographyError> {
        let text = std::fs::read_to_string(path).map_err(|source| GeographyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, problem)| GeographyError::Format {
            path: path.to_owned(),
            line,
            problem,
        })
    }

    /// The geography of a territories file's text.
    ///
    /// # Errors
    /// The line number (from 1) and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        Parser::default().parse(text)
    }

    /// Forgets the communes' populations, which only reports use
    /// (`relais coverage`): 140 KB less for the daemon.
    pub fn forget_populations(&mut self) {
        self.populations = Vec::new();
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

/// Reads a territories file line by line, each kind of line in its turn.
#[derive(Default)]
struct Parser {
    names: String,
    millesime: Option<(u16, String)>,
    regions: Vec<Area<Region>>,
    departements: Vec<(Area<Departement>, Region)>,
    epcis: Vec<Area<Epci>>,
    /// (member, its EPCI), until the communes are read.
    members: Vec<(Code, Epci)>,
    places: Vec<(Place, u32)>,
    /// (arrondissement, its commune), until the communes are read.
    parents: Vec<(Code, Code)>,
    linked: Vec<(Code, Name, Code)>,
    former: Vec<(Code, Code)>,
    postal: Vec<Code>,
}

impl Parser {
    fn parse(mut self, text: &str) -> Result<Geography, (usize, String)> {
        for (number, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // At most five fields: no allocation per line.
            let mut fields = [""; 6];
            let mut count = 0;
            for field in line.split('\t').take(fields.len()) {
                fields[count] = field;
                count += 1;
            }
            self.line(&fields[..count])
                .map_err(|problem| (number + 1, problem))?;
        }
        self.finish().map_err(|problem| (0, problem))
    }

    fn name(&mut self, name: &str) -> Result<Name, String> {
        let start = u32::try_from(self.names.len()).map_err(|_| "too many names")?;
        let len = u8::try_from(name.len()).map_err(|_| "a name is longer than 255 bytes")?;
        self.names.push_str(name);
        Ok(Name { start, len })
    }

    fn line(&mut self, fields: &[&str]) -> Result<(), String> {
        let code = |text: &str| -> Result<Code, String> {
            text.as_bytes()
                .try_into()
                .map_err(|_| format!("{text:?} is not a five-character code"))
        };
        let commune = |text: &str| Commune::parse(text).map_err(|e| format!("{text:?} {e}"));
        let number = |text: &str| {
            text.parse::<u32>()
                .map_err(|_| format!("{text:?} is not a number"))
        };
        match *fields {
            ["M", year, source, _digest] => {
                let year = year.parse().map_err(|_| "the millésime is not a year")?;
                self.millesime = Some((year, source.to_owned()));
            }
            ["R", region, name] => {
                let code = Region::parse(region)?;
                let name = self.name(name)?;
                self.regions.push(Area { code, name });
            }
            ["D", departement, region, name] => {
                let code =
                    Departement::parse(departement).map_err(|e| format!("{departement:?} {e}"))?;
                let region = Region::parse(region)?;
                let name = self.name(name)?;
                self.departements.push((Area { code, name }, region));
            }
            ["E", siren, name, members] => {
                let code = Epci::parse(siren)?;
                let name = self.name(name)?;
                for member in members.split(' ') {
                    self.members.push((code_of(member)?, code));
                }
                self.epcis.push(Area { code, name });
            }
            ["C", place, population, name] => {
                let commune = commune(place)?;
                let population = number(population)?;
                let name = self.name(name)?;
                self.places.push((
                    Place {
                        commune,
                        name_len: name.len,
                        epci: NONE,
                        name_start: name.start,
                        parent: NONE,
                    },
                    population,
                ));
            }
            ["A", place, parent, population, name] => {
                let commune = commune(place)?;
                let parent = code(parent)?;
                let population = number(population)?;
                let name = self.name(name)?;
                self.parents.push((code(place)?, parent));
                self.places.push((
                    Place {
                        commune,
                        name_len: name.len,
                        epci: NONE,
                        name_start: name.start,
                        parent: NONE,
                    },
                    population,
                ));
            }
            ["L", linked, chef_lieu, name] => {
                let linked = code(linked)?;
                let chef_lieu = code(chef_lieu)?;
                let name = self.name(name)?;
                self.linked.push((linked, name, chef_lieu));
            }
            ["F", former, current] => self.former.push((code(former)?, code(current)?)),
            ["P", postal] => self.postal.push(code(postal)?),
            _ => return Err("not a line of a territories file".into()),
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Geography, String> {
        let (millesime, source) = self.millesime.ok_or("no `M` line (millésime)")?;
        let mut paired = std::mem::take(&mut self.places);
        paired.sort_by(|a, b| a.0.commune.as_str().cmp(b.0.commune.as_str()));
        let (mut places, populations): (Vec<Place>, Vec<u32>) = paired.into_iter().unzip();
        self.epcis.sort_by_key(|area| area.code);
        self.regions.sort_by_key(|area| area.code);
        self.departements.sort_by_key(|(area, _)| area.code);
        if places.len() >= usize::from(NONE) || self.epcis.len() >= usize::from(NONE) {
            return Err("more communes or EPCI than the index can hold".into());
        }
        let index_of = |places: &[Place], code: &Code| -> Result<u32, String> {
            places
                .binary_search_by(|place| place.commune.as_str().as_bytes().cmp(code))
                .map(|index| index as u32)
                .map_err(|_| {
                    format!(
                        "{:?} names no current commune",
                        String::from_utf8_lossy(code)
                    )
                })
        };
        for (member, epci) in std::mem::take(&mut self.members) {
            let index = index_of(&places, &member)?;
            let epci = self
                .epcis
                .binary_search_by_key(&epci, |area| area.code)
                .map_err(|_| "an EPCI is missing")?;
            places[index as usize].epci = epci as u16;
        }
        for (arrondissement, parent) in std::mem::take(&mut self.parents) {
            let child = index_of(&places, &arrondissement)?;
            let parent = index_of(&places, &parent)?;
            places[child as usize].parent = parent as u16;
        }
        let mut linked = Vec::with_capacity(self.linked.len());
        for (code, name, chef_lieu) in std::mem::take(&mut self.linked) {
            let place = index_of(&places, &chef_lieu)?;
            linked.push(Linked { code, name, place });
        }
        let mut former = Vec::with_capacity(self.former.len());
        for (code, current) in std::mem::take(&mut self.former) {
            former.push((code, index_of(&places, &current)?));
        }
        linked.sort_by_key(|l| l.code);
        former.sort_by_key(|f| f.0);
        self.postal.sort_unstable();
        self.names.shrink_to_fit();
        Ok(Geography {
            millesime,
            source,
            names: self.names,
            places,
            populations,
            linked,
            former,
            postal: self.postal,
            departements: self.departements,
            regions: self.regions,
            epcis: self.epcis,
        })
    }
}

fn code_of(text: &str) -> Result<Code, String> {
    text.as_bytes()
        .try_into()
        .map_err(|_| format!("{text:?} is not a five-character code"))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, OnceLock};

    use super::*;

    /// The geography shipped with relais (`data/territories.tsv`).
    pub(crate) fn france() -> &'static Arc<Geography> {
        static FRANCE: OnceLock<Arc<Geography>> = OnceLock::new();
        FRANCE.get_or_init(|| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/territories.tsv");
            Arc::new(Geography::load(Path::new(path)).unwrap())
        })
    }

    fn commune(code: &str) -> Result<(String, Option<Mapped>), TerritoryError> {
        let territory = france().territory(Some(code), None)?;
        Ok((territory.commune().unwrap().to_string(), territory.mapped()))
    }

    #[test]
    fn the_shipped_geography_is_the_2026_millesime() {
        assert_eq!(france().millesime(), 2026);
        assert_eq!(france().source(), "@etalab/decoupage-administratif@6.0.0");
        assert_eq!(france().units().count(), 34_969 - 3 + 45);
    }

    #[test]
    fn a_current_commune_or_an_arrondissement_is_itself() {
        for code in [
            "75056", "75113", "13201", "69381", "2A004", "97411", "98735", "98901", "97501",
        ] {
            assert_eq!(commune(code), Ok((code.to_owned(), None)), "{code}");
        }
    }

    #[test]
    fn a_commune_deleguee_is_its_chef_lieu_s_commune() {
        let (current, mapped) = commune("01039").unwrap();
        assert_eq!(current, "01138");
        assert_eq!(mapped.unwrap().how, Mapping::Delegated);
        assert_eq!(france().linked_name(mapped.unwrap().from), Some("Béon"));
    }

    #[test]
    fn a_former_code_that_is_no_postal_code_is_its_commune() {
        let (current, mapped) = commune("20004").unwrap();
        assert_eq!(current, "2A004");
        assert_eq!(mapped.unwrap().how, Mapping::Former);
        let with_departement = france().territory(Some("20004"), Some("2A")).unwrap();
        assert_eq!(with_departement.departement().as_str(), "2A");
    }

    #[test]
    fn a_postal_code_is_refused_as_such_even_when_it_was_a_commune_s_code() {
        // 75013: Paris 13e's postal code, and Le Bourget's code before 1968.
        assert_eq!(commune("75013"), Err(TerritoryError::PostalCode));
        assert_eq!(
            commune("01000"),
            Err(TerritoryError::PostalCode),
            "Bourg-en-Bresse's"
        );
        // Marseille 1er's postal code is also Aix-en-Provence's INSEE code:
        // the geography cannot tell, the code is Aix's.
        assert_eq!(commune("13001").map(|(c, _)| c), Ok("13001".to_owned()));
        assert_eq!(
            commune("75120").map(|(c, _)| c),
            Ok("75120".to_owned()),
            "Paris 20e's INSEE code is no postal code"
        );
        assert_eq!(
            commune("75999"),
            Err(TerritoryError::Unknown { millesime: 2026 })
        );
        assert_eq!(commune("99999"), Err(TerritoryError::Commune));
        assert_eq!(commune("7511"), Err(TerritoryError::Commune));
    }

    #[test]
    fn an_arrondissement_lies_in_its_commune_its_epci_its_departement_and_its_region() {
        let territory = france().territory(Some("75113"), None).unwrap();
        let location = france().location(territory);
        assert_eq!(
            location.arrondissement.map(|c| c.to_string()).as_deref(),
            Some("75113")
        );
        assert_eq!(
            location.commune.map(|c| c.to_string()).as_deref(),
            Some("75056")
        );
        assert_eq!(
            location.epci.map(|e| e.to_string()).as_deref(),
            Some("200054781")
        );
        assert_eq!(location.departement.as_str(), "75");
        assert_eq!(
            location.region.map(|r| r.to_string()).as_deref(),
            Some("11")
        );
        let description = france().describe(territory);
        assert_eq!(description.place, "Paris 13e Arrondissement (75113)");
        assert_eq!(description.departement, "Paris (75)");
        assert_eq!(description.mapped, None);
    }

    #[test]
    fn a_mapped_code_is_said_in_words() {
        let territory = france().territory(Some("01039"), None).unwrap();
        let description = france().describe(territory);
        assert_eq!(description.place, "Culoz-Béon (01138)");
        assert_eq!(description.departement, "Ain (01)");
        assert_eq!(
            description.mapped.as_deref(),
            Some(
                "l'alerte donnait le code 01039 (Béon, commune déléguée ou associée), désormais Culoz-Béon"
            )
        );
    }

    #[test]
    fn registry_codes_must_be_current() {
        assert!(france().check_current("75113").is_ok());
        assert_eq!(
            france().check_current("01039"),
            Err(
                "is a commune déléguée or associée of Culoz-Béon (01138): list 01138 instead"
                    .into()
            )
        );
        assert_eq!(
            france().check_current("20004"),
            Err("is a former code of Ajaccio (2A004): list 2A004 instead".into())
        );
    }
}
