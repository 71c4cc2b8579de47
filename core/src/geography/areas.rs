//! The areas above a commune that the registry may name: a région (by its
//! INSEE code) and an EPCI à fiscalité propre (by its SIREN number). This
//! module owns their shape only; whether one exists is the geography's to
//! say, and it never reads the territories file.

use std::fmt;

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

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

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
