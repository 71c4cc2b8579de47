//! Finding places as people write them in a spreadsheet: the communes a
//! postal code serves, a commune by its name in a département, a
//! département or a région by its code or its name. `relais registry
//! import` reads a registry's territories with these; an alert never does
//! (it gives INSEE codes, read by `Geography::territory`).
//!
//! A name is compared in a normal form ([`normalise`]) that forgives case,
//! accents, hyphens and apostrophes, and `Saint`/`St`. The index of the
//! communes' names is built on demand ([`Geography::commune_names`]), so
//! that the daemon, which never looks a name up, does not hold it. A
//! lookup returns every candidate; choosing among several is the
//! caller's to refuse, never to guess.

use super::{CommuneInfo, Epci, Geography, Region};
use crate::territory::Departement;

/// The normal form in which names are compared: lowercase, without
/// accents, words separated by one space (hyphens, apostrophes and dots
/// are separators), `saint`/`sainte` written `st`/`ste`. `Saint-Étienne`,
/// `ST ETIENNE` and `saint etienne` are all `st etienne`.
pub fn normalise(name: &str) -> String {
    let mut flat = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'â' | 'ä' | 'á' | 'ã' | 'å' => flat.push('a'),
            'é' | 'è' | 'ê' | 'ë' => flat.push('e'),
            'î' | 'ï' | 'í' | 'ì' => flat.push('i'),
            'ô' | 'ö' | 'ó' | 'ò' | 'õ' => flat.push('o'),
            'ù' | 'û' | 'ü' | 'ú' => flat.push('u'),
            'ç' => flat.push('c'),
            'ÿ' | 'ý' => flat.push('y'),
            'ñ' => flat.push('n'),
            'œ' => flat.push_str("oe"),
            'æ' => flat.push_str("ae"),
            c if c.is_alphanumeric() => flat.push(c),
            _ => flat.push(' '),
        }
    }
    let mut normal = String::with_capacity(flat.len());
    for word in flat.split_whitespace() {
        if !normal.is_empty() {
            normal.push(' ');
        }
        normal.push_str(match word {
            "saint" => "st",
            "sainte" => "ste",
            word => word,
        });
    }
    normal
}

/// The current communes and arrondissements by normal name within their
/// département: built by [`Geography::commune_names`] for one import, then
/// dropped.
pub struct CommuneNames<'g> {
    geography: &'g Geography,
    /// (département, normal name, index in `places`), sorted.
    entries: Vec<(Departement, String, u32)>,
}

impl Geography {
    /// The current communes and arrondissements that `postal_code` serves,
    /// in code order; none for a code that is no postal code (or when the
    /// territories file does not list them).
    pub fn communes_of_postal_code(&self, postal_code: &str) -> Vec<CommuneInfo<'_>> {
        let Ok(code) = <[u8; 5]>::try_from(postal_code.as_bytes()) else {
            return Vec::new();
        };
        let start = self.postal_communes.partition_point(|(p, _)| *p < code);
        self.postal_communes[start..]
            .iter()
            .take_while(|(p, _)| *p == code)
            .map(|(_, index)| self.info(usize::from(*index)))
            .collect()
    }

    /// Whether the geography lists the communes of each postal code (a
    /// territories file written before it did does not).
    pub fn knows_postal_codes(&self) -> bool {
        !self.postal_communes.is_empty()
    }

    /// The index of the communes' names, for looking many up.
    pub fn commune_names(&self) -> CommuneNames<'_> {
        let mut entries: Vec<(Departement, String, u32)> = self
            .places
            .iter()
            .enumerate()
            .map(|(index, place)| {
                let name = normalise(self.name(place.name()));
                (place.commune.departement(), name, index as u32)
            })
            .collect();
        entries.sort_unstable();
        CommuneNames {
            geography: self,
            entries,
        }
    }

    /// A département by its code (`01`, `2A`, `974`; `1` for `01`) or its
    /// name in any case and with or without accents (`Ardèche`,
    /// `cotes d'armor`).
    pub fn find_departement(&self, text: &str) -> Option<Departement> {
        let text = text.trim();
        let padded = if text.len() == 1 {
            format!("0{text}")
        } else {
            text.to_ascii_uppercase()
        };
        if let Ok(code) = Departement::parse(&padded)
            && self.has_departement(code)
        {
            return Some(code);
        }
        let wanted = normalise(text);
        self.departements
            .iter()
            .find(|(area, _)| normalise(self.name(area.name)) == wanted)
            .map(|(area, _)| area.code)
    }

    /// A région by its INSEE code (`84`) or its name (`Auvergne-Rhône-Alpes`,
    /// `ile de france`).
    pub fn find_region(&self, text: &str) -> Option<Region> {
        let text = text.trim();
        if let Ok(code) = Region::parse(text)
            && self.has_region(code)
        {
            return Some(code);
        }
        let wanted = normalise(text);
        self.regions
            .iter()
            .find(|area| normalise(self.name(area.name)) == wanted)
            .map(|area| area.code)
    }

    /// An EPCI by its SIREN number, if the geography has it.
    pub fn find_epci(&self, siren: &str) -> Option<Epci> {
        Epci::parse(siren.trim())
            .ok()
            .filter(|epci| self.has_epci(*epci))
    }

    fn info(&self, index: usize) -> CommuneInfo<'_> {
        let place = &self.places[index];
        CommuneInfo {
            commune: place.commune,
            name: self.name(place.name()),
            population: self.populations.get(index).copied().unwrap_or(0),
        }
    }
}

impl<'g> CommuneNames<'g> {
    /// The current communes and arrondissements of `departement` named
    /// `name` (in its normal form), in code order.
    pub fn find(&self, name: &str, departement: Departement) -> Vec<CommuneInfo<'g>> {
        let wanted = normalise(name);
        let start = self
            .entries
            .partition_point(|(d, n, _)| (*d, n.as_str()) < (departement, wanted.as_str()));
        self.entries[start..]
            .iter()
            .take_while(|(d, n, _)| *d == departement && *n == wanted)
            .map(|(_, _, index)| self.geography.info(*index as usize))
            .collect()
    }
}
