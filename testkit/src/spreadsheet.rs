//! A national registry as a spreadsheet, for `relais registry import` at
//! scale: a CCAS for every commune of the geography (each arrondissement
//! of Paris, Lyon and Marseille in place of its city), and the four
//! caisses (`cpam`, `caf`, `carsat`, `msa`) in every département. About
//! 35,500 rows, in the French headers and `;` of a French spreadsheet.
//! `cargo run -p relais-testkit --bin national-spreadsheet` prints it.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use relais::geography::Geography;

/// The caisses' networks, each with a référent per département.
pub const CAISSES: [&str; 4] = ["cpam", "caf", "carsat", "msa"];

/// The national spreadsheet of `geography`, as CSV text; and its number
/// of référents.
pub fn national_spreadsheet(geography: &Geography) -> (String, usize) {
    let mut csv =
        String::from("identifiant;réseau;organisme;courriel;téléphone;code_insee;département\n");
    let mut referents = 0;
    let mut departements = BTreeSet::new();
    for unit in geography.units() {
        let code = unit.commune;
        departements.insert(code.departement());
        let _ = writeln!(
            csv,
            "ccas-{code};ccas;CCAS de {name};ccas-{code}@ccas.example.org;01 53 00 00 00;{code};",
            name = unit.name.replace(';', " "),
        );
        referents += 1;
    }
    for departement in departements {
        for network in CAISSES {
            let _ = writeln!(
                csv,
                "{network}-{departement};{network};{upper} {departement};\
                 {network}-{departement}@{network}.example.org;;;{departement}",
                upper = network.to_uppercase(),
            );
            referents += 1;
        }
    }
    (csv, referents)
}
