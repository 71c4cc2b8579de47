//! French territorial codes: the INSEE commune code and the département code.
//!
//! Both are parsed once, at the boundary (an alert, the registry, the CLI), into
//! small `Copy` values, so that the registry can index référents by them and
//! resolve an alert with a couple of hash look-ups. This module owns the shape
//! of the codes and the derivation of a commune's département; whether a code
//! exists is the official geography's to say (`geography`), and who receives an
//! alert is the registry's. A territory also carries the code the alert gave
//! when the geography read it as another commune ([`Mapped`]); the type lives
//! here, the geography fills it in: `geography` uses this module, never the
//! reverse.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Why a string is not a valid territorial code. The message is meant for the
/// developer of the dispatch software or the operator who wrote the registry;
/// it does not repeat the value (an alert's invalid value may be anything).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TerritoryError {
    #[error(
        "is not an INSEE commune code (five characters: a département number, \
         `2A` or `2B`, then three digits; overseas: `97x`/`98x` then two digits)"
    )]
    Commune,
    #[error(
        "is not a département code (`01`-`95` but `20`, `2A`, `2B`, \
         or an overseas code `971`-`978`, `984`, `986`-`989`)"
    )]
    Departement,
    #[error(
        "is a postal code, not an INSEE commune code: give the commune's code from the \
         Code officiel géographique (Paris 13e is 75113, its postal code 75013)"
    )]
    PostalCode,
    #[error("is not a commune code of the official geography (millésime {millesime})")]
    Unknown { millesime: u16 },
    #[error("a territory needs a `commune`, a `departement`, or both")]
    Missing,
    #[error(
        "département {given} does not match commune {commune}, which is in département {derived}"
    )]
    Mismatch {
        commune: Commune,
        given: Departement,
        derived: Departement,
    },
}

/// An INSEE commune code, e.g. `75113` (Paris 13e), `2A004` (Ajaccio), `97411`
/// (Saint-Denis, La Réunion).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Commune([u8; 5]);

/// A département code as INSEE writes it: two characters in metropolitan
/// France (`75`, `2A`), three overseas (`974`). The overseas collectivités that
/// INSEE numbers like départements (`975`, `977`, `978`, `984`, `986`-`988`)
/// are accepted too, so that every valid commune code has a département.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Departement {
    code: [u8; 3],
    len: u8,
}

impl Commune {
    /// Parses an INSEE commune code.
    ///
    /// # Errors
    /// [`TerritoryError::Commune`] when `code` is not five characters whose
    /// département prefix is valid and whose remaining characters are digits.
    pub fn parse(code: &str) -> Result<Self, TerritoryError> {
        let invalid = || TerritoryError::Commune;
        let bytes: [u8; 5] = code.as_bytes().try_into().map_err(|_| invalid())?;
        let prefix = if bytes.starts_with(b"97") || bytes.starts_with(b"98") {
            3
        } else {
            2
        };
        Departement::from_bytes(&bytes[..prefix]).ok_or_else(invalid)?;
        if !bytes[prefix..].iter().all(u8::is_ascii_digit) {
            return Err(invalid());
        }
        Ok(Self(bytes))
    }

    /// The code as written by INSEE.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `parse`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The département the commune belongs to: the first three characters
    /// overseas (`97x`, `98x`), the first two elsewhere (`2A`, `2B` included).
    pub fn departement(&self) -> Departement {
        let prefix = if self.0.starts_with(b"97") || self.0.starts_with(b"98") {
            3
        } else {
            2
        };
        let mut code = [0; 3];
        code[..prefix].copy_from_slice(&self.0[..prefix]);
        Departement {
            code,
            len: prefix as u8,
        }
    }
}

impl Departement {
    /// Parses a département code.
    ///
    /// # Errors
    /// [`TerritoryError::Departement`] when `code` is not one of the codes
    /// listed on the type.
    pub fn parse(code: &str) -> Result<Self, TerritoryError> {
        Self::from_bytes(code.as_bytes()).ok_or(TerritoryError::Departement)
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let valid = match bytes {
            [b'2', b'A' | b'B'] => true,
            [b'2', b'0'] | [b'0', b'0'] => false,
            [a @ b'0'..=b'9', b @ b'0'..=b'9'] => (*a, *b) <= (b'9', b'5'),
            [b'9', b'7', c] => (b'1'..=b'8').contains(c),
            [b'9', b'8', c] => matches!(c, b'4' | b'6' | b'7' | b'8' | b'9'),
            _ => false,
        };
        if !valid {
            return None;
        }
        let mut code = [0; 3];
        code[..bytes.len()].copy_from_slice(bytes);
        Some(Self {
            code,
            len: bytes.len() as u8,
        })
    }

    /// The code as written by INSEE.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.code[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// Where the patient is: a commune (and so its département), or only a
/// département. A value of this type is always complete and consistent.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Territory {
    commune: Option<Commune>,
    departement: Departement,
    /// The code the alert gave, when the geography read it as `commune`.
    mapped: Option<Mapped>,
}

impl Territory {
    /// A territory from the parts an alert gives.
    ///
    /// # Errors
    /// [`TerritoryError::Missing`] when both parts are missing, and
    /// [`TerritoryError::Mismatch`] when the département given is not the
    /// commune's: the alert would otherwise risk reaching the wrong office.
    pub fn new(
        commune: Option<Commune>,
        departement: Option<Departement>,
        mapped: Option<Mapped>,
    ) -> Result<Self, TerritoryError> {
        match (commune, departement) {
            (None, None) => Err(TerritoryError::Missing),
            (None, Some(departement)) => Ok(Self {
                commune: None,
                departement,
                mapped: None,
            }),
            (Some(commune), given) => {
                let derived = commune.departement();
                match given {
                    Some(given) if given != derived => Err(TerritoryError::Mismatch {
                        commune,
                        given,
                        derived,
                    }),
                    _ => Ok(Self {
                        commune: Some(commune),
                        departement: derived,
                        mapped,
                    }),
                }
            }
        }
    }

    pub fn commune(&self) -> Option<Commune> {
        self.commune
    }

    /// The département given with the alert, or derived from its commune.
    pub fn departement(&self) -> Departement {
        self.departement
    }

    /// The code the alert gave, when it named the commune by a former code
    /// or a commune déléguée's.
    pub fn mapped(&self) -> Option<Mapped> {
        self.mapped
    }
}

/// What the geography says of a code that it read as another commune.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Mapped {
    /// The code as given.
    pub from: MappedCode,
    pub how: Mapping,
}

/// How an alert's code became a current commune.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Mapping {
    /// A commune déléguée or associée: its chef-lieu's commune.
    Delegated,
    /// A former code, kept in the commune's `anciensCodes`.
    Former,
}

/// A code given in place of a current commune's: five characters, not
/// necessarily a current commune's shape (a former Corsican code starts
/// `20`). Only the geography makes one, from a code it knows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MappedCode(pub(crate) [u8; 5]);

impl MappedCode {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for MappedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MappedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// `commune 75113` or `département 2A`: the most precise part. Used in logs, the email subject and CLI output; it contains no patient data.
impl fmt::Display for Territory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.commune {
            Some(commune) => write!(f, "commune {commune}"),
            None => write!(f, "département {}", self.departement()),
        }
    }
}

impl fmt::Debug for Territory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

macro_rules! code_traits {
    ($type:ty) => {
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

        impl std::str::FromStr for $type {
            type Err = TerritoryError;
            fn from_str(code: &str) -> Result<Self, Self::Err> {
                Self::parse(code)
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&code).map_err(serde::de::Error::custom)
            }
        }
    };
}

code_traits!(Commune);
code_traits!(Departement);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metropolitan_commune_codes_derive_a_two_character_departement() {
        let commune = Commune::parse("75113").unwrap();
        assert_eq!(commune.as_str(), "75113");
        assert_eq!(commune.departement().as_str(), "75");
        assert_eq!(
            Commune::parse("01001").unwrap().departement().as_str(),
            "01"
        );
    }

    #[test]
    fn corsican_commune_codes_derive_2a_and_2b() {
        assert_eq!(
            Commune::parse("2A004").unwrap().departement().as_str(),
            "2A"
        );
        assert_eq!(
            Commune::parse("2B033").unwrap().departement().as_str(),
            "2B"
        );
    }

    #[test]
    fn overseas_commune_codes_derive_a_three_character_departement() {
        assert_eq!(
            Commune::parse("97411").unwrap().departement().as_str(),
            "974"
        );
        assert_eq!(
            Commune::parse("97611").unwrap().departement().as_str(),
            "976"
        );
        assert_eq!(
            Commune::parse("98818").unwrap().departement().as_str(),
            "988"
        );
        assert_eq!(
            Commune::parse("97801").unwrap().departement().as_str(),
            "978"
        );
    }

    #[test]
    fn malformed_commune_codes_are_refused() {
        for code in [
            "",
            "7511",
            "751130",
            "75 13",
            "2C004",
            "2a004",
            "20004",
            "00123",
            "96001",
            "97901",
            "98501",
            "9741A",
            "7511x",
            "７５１１３",
        ] {
            assert_eq!(
                Commune::parse(code),
                Err(TerritoryError::Commune),
                "{code:?} should be refused"
            );
        }
    }

    #[test]
    fn departement_codes_follow_the_insee_list() {
        for code in [
            "01", "19", "21", "2A", "2B", "75", "95", "971", "976", "975", "988", "989",
        ] {
            assert_eq!(Departement::parse(code).unwrap().as_str(), code);
        }
        for code in [
            "", "0", "00", "20", "96", "99", "2C", "2a", "970", "979", "985", "9750", "7",
        ] {
            assert!(
                Departement::parse(code).is_err(),
                "{code:?} should be refused"
            );
        }
    }

    #[test]
    fn a_territory_prefers_the_given_departement_and_otherwise_derives_it() {
        let commune = Commune::parse("97411").ok();
        let derived = Territory::new(commune, None, None).unwrap();
        assert_eq!(derived.departement().as_str(), "974");
        let consistent = Territory::new(commune, Departement::parse("974").ok(), None).unwrap();
        assert_eq!(consistent, derived);
        let given = Territory::new(None, Departement::parse("2B").ok(), None).unwrap();
        assert_eq!(given.departement().as_str(), "2B");
        assert_eq!(given.commune(), None);
        assert_eq!(
            Territory::new(None, None, None),
            Err(TerritoryError::Missing)
        );
    }

    #[test]
    fn a_departement_that_contradicts_the_commune_is_refused() {
        let error = Territory::new(
            Commune::parse("75113").ok(),
            Departement::parse("92").ok(),
            None,
        );
        assert_eq!(
            error.unwrap_err().to_string(),
            "département 92 does not match commune 75113, which is in département 75"
        );
    }

    #[test]
    fn codes_deserialize_through_their_parser() {
        let commune: Commune = serde_json::from_str("\"2A004\"").unwrap();
        assert_eq!(commune.as_str(), "2A004");
        let error = serde_json::from_str::<Departement>("\"20\"").unwrap_err();
        assert!(
            error.to_string().contains("is not a département code"),
            "{error}"
        );
    }
}
