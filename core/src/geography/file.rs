//! The territories file: its format, read line by line into a
//! [`Geography`], from a path ([`Geography::load`]) or from the copy compiled
//! into relais ([`Geography::built_in`]). Either way the names are copied end
//! to end into one buffer of their own, so that once parsed the text is
//! never read again (the daemon hands the built-in text's pages back to the
//! system). This module builds a geography and never answers a question
//! about one; the lookups are `geography`'s.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{Area, Code, Epci, Geography, Linked, NONE, Name, Place, Region};
use crate::territory::{Commune, Departement};

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

/// The territories file relais is built with (`data/territories.tsv`, at
/// the workspace's root): the millésime it ships, and the default.
pub(super) const BUILT_IN: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/territories.tsv"
));

/// Where a geography was read from, for `relais check` and the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The territories file compiled into relais, of the millésime its
    /// `M` line gives.
    BuiltIn { millesime: u16 },
    /// A territories file read at start-up (`territories.path`).
    File(PathBuf),
    /// Text given to [`Geography::parse`].
    Text,
}

/// `built in, millésime 2026`, or the file's path.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BuiltIn { millesime } => write!(f, "built in, millésime {millesime}"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Text => f.write_str("given as text"),
        }
    }
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
        let mut geography =
            Self::parse(&text).map_err(|(line, problem)| GeographyError::Format {
                path: path.to_owned(),
                line,
                problem,
            })?;
        geography.origin = Origin::File(path.to_owned());
        Ok(geography)
    }

    /// The geography of a territories file's text.
    ///
    /// # Errors
    /// The line number (from 1) and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        Parser::default().parse(text)
    }

    /// The geography compiled into relais: the millésime it ships with,
    /// read from the binary's own copy of `data/territories.tsv`. Each call
    /// parses it anew: take it once at start-up and share it, as
    /// [`Geography::load`]'s result (an owned geography, so that the daemon
    /// can forget the populations).
    pub fn built_in() -> Self {
        let mut geography = Parser::default()
            .parse(BUILT_IN)
            // Not input: the tests parse this very text.
            .unwrap_or_else(|(line, problem)| {
                panic!("the built-in territories file, line {line}: {problem}")
            });
        geography.origin = Origin::BuiltIn {
            millesime: geography.millesime,
        };
        geography
    }

    /// Where the geography was read from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The text of the built-in geography, where the binary keeps it: once
    /// parsed, nothing reads it again, and the daemon hands its pages back
    /// to the system.
    #[must_use]
    pub fn built_in_text() -> &'static str {
        BUILT_IN
    }
}

/// Reads a territories file line by line, each kind of line in its turn.
#[derive(Default)]
struct Parser {
    /// The names read, end to end.
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
    /// Every postal code, with the communes it serves (none in a file
    /// written before they were listed).
    postal: Vec<Code>,
    /// (postal code, a commune it serves), until the communes are read.
    served: Vec<(Code, Code)>,
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
            ["P", postal, communes] => {
                let postal = code(postal)?;
                self.postal.push(postal);
                for commune in communes.split(' ') {
                    self.served.push((postal, code_of(commune)?));
                }
            }
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
        let mut postal_communes = Vec::with_capacity(self.served.len());
        for (postal, commune) in std::mem::take(&mut self.served) {
            postal_communes.push((postal, index_of(&places, &commune)? as u16));
        }
        postal_communes.sort_unstable();
        linked.sort_by_key(|l| l.code);
        former.sort_by_key(|f| f.0);
        // The postal codes that name no commune, current or linked: given
        // as a commune code, they are refused as postal codes.
        let is_place = |code: &Code| index_of(&places, code).is_ok();
        let is_linked = |code: &Code| linked.binary_search_by_key(code, |l| l.code).is_ok();
        self.postal
            .retain(|code| !is_place(code) && !is_linked(code));
        self.postal.sort_unstable();
        self.postal.dedup();
        self.postal.shrink_to_fit();
        self.names.shrink_to_fit();
        let names = self.names;
        Ok(Geography {
            millesime,
            source,
            origin: Origin::Text,
            names,
            places,
            populations,
            linked,
            former,
            postal: self.postal,
            postal_communes,
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
