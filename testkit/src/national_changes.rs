//! A registry at national scale, and a copy of it with a given number of
//! changes, for the tests and the measurements of `relais registry diff`:
//! every unit of the official geography (35,000 communes, arrondissements
//! in place of Paris, Lyon and Marseille) covered, some 20,000 référents.
//! Deterministic: the same geography gives the same files.
//!
//! It stands alone: it uses nothing of the testkit, and nothing there
//! uses it but the tests of `relais registry diff`.
//!
//! - `ccas`: a référent per two units, a second one for every eighth pair,
//!   and a national fallback; route `orientation_sociale`;
//! - `cpam` and `caf`: a référent per département, a national fallback;
//!   route `acces_aux_droits`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use relais::geography::Geography;

/// A registry as data, written out by [`National::to_toml`].
#[derive(Debug, Clone)]
pub struct National {
    pub referents: Vec<Entry>,
}

/// One `[[referent]]`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub network: &'static str,
    pub email: String,
    pub phone: Option<String>,
    pub communes: Vec<String>,
    pub departements: Vec<String>,
    pub fallback: bool,
}

/// What [`National::with_changes`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: usize,
    pub removed: usize,
    /// Référents whose email or phone changed.
    pub changed: usize,
    /// The communes whose `ccas` recipients change: those of the référents
    /// added and removed.
    pub communes: BTreeSet<String>,
}

impl National {
    /// The registry over every unit of `geography`.
    pub fn of(geography: &Geography) -> Self {
        let units: Vec<String> = geography
            .units()
            .map(|unit| unit.commune.to_string())
            .collect();
        let departements: BTreeSet<String> = geography
            .units()
            .map(|unit| unit.commune.departement().to_string())
            .collect();
        let mut referents = Vec::new();
        for (pair, communes) in units.chunks(2).enumerate() {
            referents.push(entry(format!("ccas-{pair}"), "ccas", communes.to_vec()));
            if pair % 8 == 0 {
                referents.push(entry(format!("ccas-{pair}-bis"), "ccas", communes.to_vec()));
            }
        }
        for network in ["cpam", "caf"] {
            for departement in &departements {
                let mut referent = entry(format!("{network}-{departement}"), network, Vec::new());
                referent.departements = vec![departement.clone()];
                referent.phone = Some(format!("01 53 00 {:02} 00", referents.len() % 100));
                referents.push(referent);
            }
        }
        for network in ["ccas", "cpam", "caf"] {
            let mut referent = entry(format!("{network}-national"), network, Vec::new());
            referent.fallback = true;
            referents.push(referent);
        }
        Self { referents }
    }

    /// A copy with `count` changes (a multiple of 5): a fifth of référents
    /// added, a fifth removed, and three fifths with a new email or phone,
    /// spread over the `ccas` référents of the whole country.
    pub fn with_changes(&self, count: usize) -> (Self, Changes) {
        let ccas: Vec<usize> = (0..self.referents.len())
            .filter(|&i| self.referents[i].network == "ccas" && !self.referents[i].fallback)
            .collect();
        let step = ccas.len() / count.max(1);
        let picked: Vec<usize> = ccas
            .iter()
            .step_by(step.max(1))
            .take(count)
            .copied()
            .collect();
        let mut changes = Changes::default();
        let mut referents = self.referents.clone();
        let mut removed = BTreeSet::new();
        for (n, &index) in picked.iter().enumerate() {
            let referent = &mut referents[index];
            match n % 5 {
                0 => {
                    changes.communes.extend(referent.communes.iter().cloned());
                    removed.insert(index);
                    changes.removed += 1;
                }
                1 => {
                    let mut added = entry(
                        format!("{}-new", referent.id),
                        "ccas",
                        referent.communes.clone(),
                    );
                    added.email = format!("{}-new@ccas.example.org", referent.id);
                    changes.communes.extend(added.communes.iter().cloned());
                    referents.push(added);
                    changes.added += 1;
                }
                2 | 3 => {
                    referent.email = format!("accueil-{}@ccas.example.org", referent.id);
                    changes.changed += 1;
                }
                _ => {
                    referent.phone = Some("05 62 11 11 11".to_owned());
                    changes.changed += 1;
                }
            }
        }
        let referents = referents
            .into_iter()
            .enumerate()
            .filter(|(index, _)| !removed.contains(index))
            .map(|(_, referent)| referent)
            .collect();
        (Self { referents }, changes)
    }

    /// The registry file.
    pub fn to_toml(&self) -> String {
        let mut text = String::from(
            "version = \"national test registry\"\n\n\
             [[route]]\nkind = \"orientation_sociale\"\nnetworks = [\"ccas\"]\n\n\
             [[route]]\nkind = \"acces_aux_droits\"\nnetworks = [\"cpam\", \"caf\"]\n\n",
        );
        let list = |codes: &[String]| {
            let quoted: Vec<String> = codes.iter().map(|c| format!("\"{c}\"")).collect();
            quoted.join(", ")
        };
        for r in &self.referents {
            let _ = write!(
                text,
                "[[referent]]\nid = \"{}\"\nnetwork = \"{}\"\nemail = \"{}\"\n",
                r.id, r.network, r.email
            );
            if let Some(phone) = &r.phone {
                let _ = writeln!(text, "phone = \"{phone}\"");
            }
            if !r.communes.is_empty() {
                let _ = writeln!(text, "communes = [{}]", list(&r.communes));
            }
            if !r.departements.is_empty() {
                let _ = writeln!(text, "departements = [{}]", list(&r.departements));
            }
            if r.fallback {
                text.push_str("fallback = true\n");
            }
            text.push('\n');
        }
        text
    }
}

fn entry(id: String, network: &'static str, communes: Vec<String>) -> Entry {
    Entry {
        email: format!("{id}@{network}.example.org"),
        id,
        network,
        phone: None,
        communes,
        departements: Vec::new(),
        fallback: false,
    }
}
