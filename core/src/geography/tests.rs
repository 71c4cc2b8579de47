//! The geography's tests, against the territories file shipped with relais.

use std::path::Path;
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
        Err("is a commune déléguée or associée of Culoz-Béon (01138): list 01138 instead".into())
    );
    assert_eq!(
        france().check_current("20004"),
        Err("is a former code of Ajaccio (2A004): list 2A004 instead".into())
    );
}

#[test]
fn the_built_in_geography_knows_paris_13e_and_says_it_is_built_in() {
    let built_in = Geography::built_in();

    let territory = built_in.territory(Some("75113"), None).unwrap();

    assert_eq!(
        built_in.describe(territory).place,
        "Paris 13e Arrondissement (75113)"
    );
    assert_eq!(built_in.millesime(), 2026);
    assert_eq!(built_in.origin(), &Origin::BuiltIn { millesime: 2026 });
    assert_eq!(built_in.origin().to_string(), "built in, millésime 2026");
}

#[test]
fn the_built_in_geography_is_the_shipped_file_read_from_its_path() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/territories.tsv"
    ));

    let built_in = Geography::built_in();
    let loaded = Geography::load(path).unwrap();

    assert_eq!(loaded.origin(), &Origin::File(path.to_owned()));
    assert_eq!(built_in.units().count(), loaded.units().count());
    assert!(
        built_in.units().eq(loaded.units()),
        "same communes, names and populations"
    );
    assert_eq!(built_in.source(), loaded.source());
    for code in ["01039", "20004", "75013", "75999"] {
        assert_eq!(
            built_in.territory(Some(code), None),
            loaded.territory(Some(code), None),
            "{code}"
        );
    }
}

fn codes(communes: &[CommuneInfo<'_>]) -> Vec<String> {
    communes
        .iter()
        .map(|c| format!("{} {}", c.commune, c.name))
        .collect()
}

#[test]
fn a_postal_code_serves_its_communes_and_an_arrondissement_not_its_city() {
    let france = france();

    let bourg = france.communes_of_postal_code("01000");
    let paris_13 = france.communes_of_postal_code("75013");
    let paris_16 = france.communes_of_postal_code("75016");
    let ajaccio = france.communes_of_postal_code("20000");
    let none = france.communes_of_postal_code("00000");

    assert_eq!(
        codes(&bourg),
        ["01053 Bourg-en-Bresse", "01344 Saint-Denis-lès-Bourg"]
    );
    assert_eq!(codes(&paris_13), ["75113 Paris 13e Arrondissement"]);
    assert_eq!(codes(&paris_16), ["75116 Paris 16e Arrondissement"]);
    assert_eq!(codes(&ajaccio), ["2A004 Ajaccio"]);
    assert!(none.is_empty());
    assert_eq!(france.communes_of_postal_code("32390").len(), 10);
}

#[test]
fn every_current_commune_with_a_postal_code_is_found_by_it() {
    let france = france();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/territories.tsv"
    ))
    .unwrap();
    let mut served = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("P\t")) {
        let postal = line.split('\t').nth(1).unwrap();
        for info in france.communes_of_postal_code(postal) {
            served.insert(info.commune);
        }
    }

    // Five communes have no postal code (the villages "morts pour la
    // France" of the Meuse, among others); Paris, Lyon and Marseille are
    // served through their arrondissements.
    let units = france.units().count();
    assert_eq!(served.len(), units - 5, "{units} units");
}

#[test]
fn a_postal_code_given_as_a_commune_code_is_still_refused() {
    assert_eq!(commune("75013"), Err(TerritoryError::PostalCode));
    assert_eq!(commune("01000"), Err(TerritoryError::PostalCode));
}

#[test]
fn a_commune_is_found_by_its_name_in_any_case_and_accent_and_saint_as_st() {
    let names = france().commune_names();
    let loire = Departement::parse("42").unwrap();
    let marne = Departement::parse("08").unwrap();

    for written in ["Saint-Étienne", "ST ETIENNE", "saint etienne", "St-Étienne"] {
        assert_eq!(
            codes(&names.find(written, loire)),
            ["42218 Saint-Étienne"],
            "{written}"
        );
    }
    assert_eq!(
        codes(&names.find("sainte marie", marne)),
        ["08390 Sainte-Marie"]
    );
    assert!(names.find("Saint-Étienne", marne).is_empty());
}

#[test]
fn an_arrondissement_is_found_by_its_name() {
    let names = france().commune_names();

    let found = names.find(
        "Paris 13e arrondissement",
        Departement::parse("75").unwrap(),
    );

    assert_eq!(codes(&found), ["75113 Paris 13e Arrondissement"]);
}

#[test]
fn a_departement_is_found_by_its_code_or_its_name() {
    let france = france();
    let code = |text: &str| france.find_departement(text).map(|d| d.to_string());

    assert_eq!(code("07"), Some("07".into()));
    assert_eq!(code("7"), Some("07".into()));
    assert_eq!(code("2a"), Some("2A".into()));
    assert_eq!(code("974"), Some("974".into()));
    assert_eq!(code("Ardèche"), Some("07".into()));
    assert_eq!(code("cotes d'armor"), Some("22".into()));
    assert_eq!(code("la reunion"), Some("974".into()));
    assert_eq!(code("20"), None);
    assert_eq!(code("Atlantide"), None);
}

#[test]
fn a_region_and_an_epci_are_found_by_code_and_the_region_by_name() {
    let france = france();

    assert_eq!(
        france.find_region("84").map(|r| r.to_string()),
        Some("84".into())
    );
    assert_eq!(
        france.find_region("ile-de-france").map(|r| r.to_string()),
        Some("11".into())
    );
    assert_eq!(france.find_region("99"), None);
    assert_eq!(
        france.find_epci("200046977").map(|e| e.to_string()),
        Some("200046977".into())
    );
    assert_eq!(france.find_epci("123456789"), None);
}

#[test]
fn names_are_compared_in_one_normal_form() {
    assert_eq!(normalise("Saint-Étienne"), "st etienne");
    assert_eq!(normalise("  L'Haÿ-les-Roses "), "l hay les roses");
    assert_eq!(normalise("Sainte-Mère-Église"), "ste mere eglise");
    assert_eq!(normalise("Œuilly"), "oeuilly");
}
