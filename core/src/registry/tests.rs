//! The registry's tests: resolution, validation, escalation and the summary, against the
//! geography shipped with relais.

use std::time::Duration;

use super::*;
use crate::alert::Priority;
use crate::geography::tests::france;
use crate::territory::Territory;

const REGISTRY: &str = r#"
    [[route]]
    kind = "orientation_sociale"
    networks = ["ccas"]
    label = "Orientation sociale"

    [[route]]
    kind = "acces_aux_droits"
    networks = ["cpam", "caf"]

    [[referent]]
    id = "ccas-paris-13"
    network = "ccas"
    name = "Camille Martin"
    organisation = "CCAS de Paris 13e"
    email = "camille.martin@ccas-paris13.example.org"
    communes = ["75113"]

    [[referent]]
    id = "ccas-paris-13-bis"
    network = "ccas"
    email = "accueil@ccas-paris13.example.org"
    communes = ["75113"]

    [[referent]]
    id = "ccas-paris"
    network = "ccas"
    email = "social@paris.example.org"
    departements = ["75"]

    [[referent]]
    id = "ccas-fallback"
    network = "ccas"
    email = "permanence@ccas.example.org"
    fallback = true

    [[referent]]
    id = "ccas-ajaccio"
    network = "ccas"
    email = "ccas@ajaccio.example.org"
    communes = ["2A004"]

    [[referent]]
    id = "cpam-974"
    network = "cpam"
    email = "referent@cpam-reunion.example.org"
    departements = ["974"]

    [[referent]]
    id = "caf-974"
    network = "caf"
    email = "referent@caf-reunion.example.org"
    communes = ["97411"]
"#;

fn registry() -> Registry {
    Registry::from_toml(REGISTRY, france()).unwrap()
}

fn kind(kind: &str) -> Kind {
    Kind::parse(kind).unwrap()
}

fn commune(code: &str) -> Territory {
    france().territory(Some(code), None).unwrap()
}

fn departement(code: &str) -> Territory {
    france().territory(None, Some(code)).unwrap()
}

fn ids<'r>(resolution: &Resolution<'r>) -> Vec<&'r str> {
    resolution.referents().map(|r| r.id().as_str()).collect()
}

#[test]
fn the_arrondissement_level_wins_and_every_referent_there_receives() {
    let registry = registry();
    let resolution = registry
        .resolve(&kind("orientation_sociale"), commune("75113"))
        .unwrap();
    assert_eq!(ids(&resolution), ["ccas-paris-13", "ccas-paris-13-bis"]);
    assert_eq!(resolution.matched[0].level, Level::Arrondissement);
    assert!(resolution.unmatched.is_empty());
}

#[test]
fn the_departement_level_serves_other_communes_of_the_departement() {
    let registry = registry();
    let resolution = registry
        .resolve(&kind("orientation_sociale"), commune("75115"))
        .unwrap();
    assert_eq!(ids(&resolution), ["ccas-paris"]);
    assert_eq!(resolution.matched[0].level, Level::Departement);
    let resolution = registry
        .resolve(&kind("orientation_sociale"), departement("75"))
        .unwrap();
    assert_eq!(ids(&resolution), ["ccas-paris"]);
}

#[test]
fn the_fallback_serves_territories_nobody_covers() {
    let registry = registry();
    let resolution = registry
        .resolve(&kind("orientation_sociale"), commune("69123"))
        .unwrap();
    assert_eq!(ids(&resolution), ["ccas-fallback"]);
    assert_eq!(resolution.matched[0].level, Level::Fallback);
}

#[test]
fn corsican_and_overseas_codes_resolve_at_their_own_level() {
    let registry = registry();
    let ajaccio = registry
        .resolve(&kind("orientation_sociale"), commune("2A004"))
        .unwrap();
    assert_eq!(ids(&ajaccio), ["ccas-ajaccio"]);
    let saint_denis = registry
        .resolve(&kind("acces_aux_droits"), commune("97411"))
        .unwrap();
    assert_eq!(ids(&saint_denis), ["cpam-974", "caf-974"]);
    assert_eq!(saint_denis.matched[0].level, Level::Departement);
    assert_eq!(saint_denis.matched[1].level, Level::Commune);
}

#[test]
fn a_network_without_match_is_reported_beside_the_others() {
    let registry = registry();
    let resolution = registry
        .resolve(&kind("acces_aux_droits"), commune("97415"))
        .unwrap();
    assert_eq!(ids(&resolution), ["cpam-974"]);
    assert_eq!(resolution.unmatched, ["caf"]);
    assert_eq!(
        resolution
            .unmatched_error(commune("97415"))
            .unwrap()
            .to_string(),
        "no référent of network(s) caf for commune 97415 (département 974), and no fallback"
    );
}

#[test]
fn an_unknown_kind_or_an_uncovered_territory_is_unroutable() {
    let registry = registry();
    assert_eq!(
        registry
            .resolve(&kind("demande_visite"), commune("75113"))
            .unwrap_err(),
        Unroutable::NoRoute("demande_visite".into())
    );
    assert_eq!(
        registry
            .resolve(&kind("acces_aux_droits"), commune("75113"))
            .unwrap_err()
            .to_string(),
        "no référent of network(s) cpam, caf for commune 75113 (département 75), and no fallback"
    );
}

#[test]
fn the_wildcard_route_adds_its_networks_to_every_kind() {
    let registry = Registry::from_toml(
        &format!("{REGISTRY}\n[[route]]\nkind = \"*\"\nnetworks = [\"ccas\"]\n"),
        france(),
    )
    .unwrap();
    let resolution = registry
        .resolve(&kind("demande_visite"), commune("2A004"))
        .unwrap();
    assert_eq!(ids(&resolution), ["ccas-ajaccio"]);
    let both = registry
        .resolve(&kind("acces_aux_droits"), commune("97411"))
        .unwrap();
    assert_eq!(ids(&both), ["cpam-974", "caf-974", "ccas-fallback"]);
}

#[test]
fn labels_name_the_kind_for_people() {
    let registry = registry();
    assert_eq!(
        registry.kind_label(&kind("orientation_sociale")),
        "Orientation sociale"
    );
    assert_eq!(
        registry.kind_label(&kind("acces_aux_droits")),
        "acces aux droits"
    );
}

#[test]
fn every_error_of_a_broken_registry_is_listed() {
    let broken = r#"
        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas", "msa"]

        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas"]

        [[route]]
        kind = "Bad Kind"
        networks = ["ccas"]

        [[referent]]
        id = "a"
        network = "ccas"
        email = "not-an-address"
        communes = ["75113"]

        [[referent]]
        id = "b"
        network = "ccas"
        email = "b@example.org"
        communes = ["7511", "75113"]
        departements = ["20"]

        [[referent]]
        id = "b"
        network = "ccas"
        email = "b2@example.org"
        fallback = true

        [[referent]]
        id = "c"
        network = "ccas"
        email = "c@example.org"

        [[referent]]
        id = "d d"
        network = "CCAS"
        name = "Line\nbreak"
        email = "d@example.org"
        fallback = true
    "#;
    let RegistryError::Invalid { errors, .. } = Registry::from_toml(broken, france()).unwrap_err()
    else {
        panic!("expected validation errors");
    };
    let expected = [
        r#"referent #1 ("a"): email "not-an-address" is not a valid address: "#,
        r#"referent #2 ("b"): commune "7511" is not an INSEE commune code"#,
        r#"referent #2 ("b"): département "20" is not a département code"#,
        r#"referent #3 ("b"): the id is already used by another référent"#,
        r#"referent #4 ("c"): covers no territory"#,
        r#"referent #5 ("d d"): id "d d" must be 1 to 64 characters"#,
        r#"referent #5 ("d d"): network "CCAS" must be a lowercase identifier"#,
        r#"referent #5 ("d d"): `name` must be one non-empty line of text"#,
        r#"route #1 (kind "orientation_sociale"): network "msa" has no référent"#,
        r#"route #2 (kind "orientation_sociale"): this kind already has a route"#,
        r#"route #3 (kind "Bad Kind"): the kind must be a lowercase identifier"#,
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (error, start) in errors.iter().zip(expected) {
        assert!(
            error.starts_with(start),
            "{error:?} should start with {start:?}"
        );
    }
}

#[test]
fn an_address_relais_cannot_send_is_refused_naming_the_referent() {
    let referent = |id: &str, email: &str| {
        format!(
            "[[referent]]\nid = \"{id}\"\nnetwork = \"ccas\"\nemail = '{email}'\ncommunes = [\"75113\"]\n"
        )
    };
    let registry = [
        "[[route]]\nkind = \"orientation_sociale\"\nnetworks = [\"ccas\"]\n".to_owned(),
        referent("quoted", r#""jean dupont"@ccas.example.org"#),
        referent("literal", "agent@[192.0.2.1]"),
        referent("idn", "agent@mairie-évry.example.org"),
        referent("utf8", "éloïse@mairie-évry.example.org"),
    ]
    .concat();
    let RegistryError::Invalid { errors, .. } =
        Registry::from_toml(&registry, france()).unwrap_err()
    else {
        panic!("expected validation errors");
    };
    assert_eq!(
        errors,
        [
            r#"referent #1 ("quoted"): email "\"jean dupont\"@ccas.example.org" is not a valid address: a quoted local part cannot be sent"#,
            r#"referent #2 ("literal"): email "agent@[192.0.2.1]" is not a valid address: an address literal as domain cannot be used; give a domain name"#,
        ]
    );
}

#[test]
fn unknown_keys_and_an_empty_registry_are_refused() {
    let typo = "[[referent]]\nid = \"a\"\nnetwork = \"ccas\"\nemail = \"a@b.org\"\ncomunes = []\n";
    let error = Registry::from_toml(typo, france()).unwrap_err().to_string();
    assert!(error.contains("unknown field `comunes`"), "{error}");
    let error = Registry::from_toml("", france()).unwrap_err().to_string();
    assert!(error.contains("has no [[route]]"), "{error}");
}

#[test]
fn a_json_registry_with_the_same_keys_is_the_same_registry() {
    let dir = tempfile::tempdir().unwrap();
    let value: toml::Value = toml::from_str(REGISTRY).unwrap();
    let path = dir.path().join("referents.json");
    std::fs::write(&path, serde_json::to_string(&value).unwrap()).unwrap();
    let json = Registry::load(&path, france()).unwrap();
    assert_eq!(json.summary(), registry().summary());
    let resolution = json
        .resolve(&kind("orientation_sociale"), commune("75113"))
        .unwrap();
    assert_eq!(ids(&resolution), ["ccas-paris-13", "ccas-paris-13-bis"]);

    std::fs::write(
        &path,
        r#"{"route": [], "referent": [{"id": "a", "network": "ccas", "email": "x"}]}"#,
    )
    .unwrap();
    let RegistryError::Invalid { errors, .. } = Registry::load(&path, france()).unwrap_err() else {
        panic!("expected validation errors");
    };
    assert_eq!(errors.len(), 2, "{errors:#?}");
    std::fs::write(&path, r#"{"route": [], "referen": []}"#).unwrap();
    let error = Registry::load(&path, france()).unwrap_err().to_string();
    assert!(error.contains("unknown field `referen`"), "{error}");
}

#[test]
fn the_summary_counts_coverage_per_network() {
    let summary = registry().summary();
    assert_eq!(summary.referents, 7);
    assert_eq!(
        summary.networks["ccas"],
        NetworkSummary {
            referents: 5,
            communes: 2,
            epcis: 0,
            departements: 1,
            regions: 0,
            fallbacks: 1
        }
    );
    assert_eq!(
        summary.routes[0],
        ("acces_aux_droits".into(), vec!["cpam".into(), "caf".into()])
    );
}

#[test]
fn every_error_of_the_publishers_is_listed() {
    let registry = format!(
        r#"{REGISTRY}
        [[publisher]]
        user = "sos75"
        association = "SOS Médecins Paris"
        departements = ["75"]
        communes = ["7511"]
        kinds = ["Bad Kind"]

        [[publisher]]
        user = "sos75"
        association = " "
        everywhere = true
        communes = ["75113"]

        [[publisher]]
        user = "sos13"
        association = "SOS Médecins Marseille"
        kinds = []
        "#
    );
    let RegistryError::Invalid { errors, .. } =
        Registry::from_toml(&registry, france()).unwrap_err()
    else {
        panic!("not refused as invalid");
    };
    assert_eq!(
        errors,
        [
            r#"publisher #1 ("sos75"): commune "7511" is not an INSEE commune code (five characters: a département number, `2A` or `2B`, then three digits; overseas: `97x`/`98x` then two digits)"#,
            r#"publisher #1 ("sos75"): the kind must be a lowercase identifier: a letter, then letters, digits or `_`, at most 64"#,
            r#"publisher #2 ("sos75"): `association` must be one non-empty line of text"#,
            r#"publisher #2 ("sos75"): `everywhere = true` with `communes` or `departements`: give one or the other"#,
            r#"publisher #2 ("sos75"): this user already has a [[publisher]]; one entry per RabbitMQ user"#,
            r#"publisher #3 ("sos13"): may alert about no territory: give `communes`, `departements`, or `everywhere = true`"#,
            r#"publisher #3 ("sos13"): `kinds` is empty; leave it out to allow every kind"#,
        ]
    );
}

#[test]
fn registry_codes_must_be_current_and_every_wrong_one_is_listed_with_the_code_to_use() {
    let broken = r#"
        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas"]

        [[referent]]
        id = "a"
        network = "ccas"
        email = "a@example.org"
        communes = ["01039", "20004", "75013", "75999"]
        epcis = ["200057867", "12345"]
        departements = ["989"]
        regions = ["12"]
    "#;
    let RegistryError::Invalid { errors, .. } = Registry::from_toml(broken, france()).unwrap_err()
    else {
        panic!("not refused as invalid");
    };
    assert_eq!(
        errors,
        [
            r#"referent #1 ("a"): commune "01039" is a commune déléguée or associée of Culoz-Béon (01138): list 01138 instead"#,
            r#"referent #1 ("a"): commune "20004" is a former code of Ajaccio (2A004): list 2A004 instead"#,
            r#"referent #1 ("a"): commune "75013" is a postal code, not an INSEE commune code: give the commune's code from the Code officiel géographique (Paris 13e is 75113, its postal code 75013)"#,
            r#"referent #1 ("a"): commune "75999" is not a commune code of the official geography (millésime 2026)"#,
            r#"referent #1 ("a"): EPCI "200057867" is not an EPCI à fiscalité propre of the official geography (millésime 2026; the établissements publics territoriaux of the Grand Paris are not: list their communes)"#,
            r#"referent #1 ("a"): EPCI "12345" is not the SIREN number of an EPCI (nine digits, e.g. 200046977)"#,
            r#"referent #1 ("a"): région "12" is not a région of the official geography"#,
        ]
    );
}

#[test]
fn resolution_climbs_from_arrondissement_to_region() {
    let registry = Registry::from_toml(
        r#"
        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas"]

        [[referent]]
        id = "lyon-3"
        network = "ccas"
        email = "lyon3@example.org"
        communes = ["69383"]

        [[referent]]
        id = "lyon"
        network = "ccas"
        email = "lyon@example.org"
        communes = ["69123"]

        [[referent]]
        id = "metropole"
        network = "ccas"
        email = "metropole@example.org"
        epcis = ["200046977"]

        [[referent]]
        id = "rhone"
        network = "ccas"
        email = "rhone@example.org"
        departements = ["69"]

        [[referent]]
        id = "aura"
        network = "ccas"
        email = "aura@example.org"
        regions = ["84"]

        [[referent]]
        id = "france"
        network = "ccas"
        email = "france@example.org"
        fallback = true
        "#,
        france(),
    )
    .unwrap();
    let at = |territory: Territory| {
        let resolution = registry
            .resolve(&kind("orientation_sociale"), territory)
            .unwrap();
        (ids(&resolution)[0].to_owned(), resolution.matched[0].level)
    };
    let expected = [
        ("69383", "lyon-3", Level::Arrondissement),
        ("69381", "lyon", Level::Commune),
        ("69034", "metropole", Level::Epci),
        ("69001", "rhone", Level::Departement),
        ("01053", "aura", Level::Region),
        ("75113", "france", Level::Fallback),
    ];
    for (code, id, level) in expected {
        assert_eq!(at(commune(code)), (id.to_owned(), level), "{code}");
    }
    assert_eq!(at(departement("01")), ("aura".to_owned(), Level::Region));
}

const ABSENCES: &str = r#"
    [[route]]
    kind = "orientation_sociale"
    networks = ["ccas"]

    [[referent]]
    id = "camille"
    network = "ccas"
    name = "Camille Martin"
    email = "camille@example.org"
    communes = ["75113"]
    deputies = ["dominique", "sacha"]
    absences = [{ from = "2026-12-24", to = "2027-01-02" }]

    [[referent]]
    id = "dominique"
    network = "ccas"
    email = "dominique@example.org"
    communes = ["75114"]
    absences = [{ from = "2026-12-31", to = "2027-01-02" }]

    [[referent]]
    id = "sacha"
    network = "ccas"
    email = "sacha@example.org"
    communes = ["75115"]
    absences = [{ from = "2027-01-01", to = "2027-01-02" }]

    [[referent]]
    id = "permanence"
    network = "ccas"
    email = "permanence@example.org"
    fallback = true
"#;

#[test]
fn an_absent_referent_s_alerts_go_to_its_present_deputies_then_to_the_fallback() {
    use time::macros::datetime;
    let registry = Registry::from_toml(ABSENCES, france()).unwrap();
    let at = |instant| {
        let resolution = registry
            .resolve_at(&kind("orientation_sociale"), commune("75113"), instant)
            .unwrap();
        let behalf: Vec<Option<String>> = resolution
            .referents()
            .map(|r| resolution.on_behalf_of(r).map(|a| a.id().to_string()))
            .collect();
        (ids(&resolution).join(","), behalf)
    };
    // The last minute before the absence, Paris time (UTC+1).
    assert_eq!(
        at(datetime!(2026-12-23 22:59:59 UTC)),
        ("camille".into(), vec![None])
    );
    let camille = Some("camille".to_owned());
    assert_eq!(
        at(datetime!(2026-12-23 23:00:00 UTC)),
        (
            "dominique,sacha".into(),
            vec![camille.clone(), camille.clone()]
        )
    );
    assert_eq!(
        at(datetime!(2026-12-31 10:00:00 +01:00)),
        ("sacha".into(), vec![camille.clone()])
    );
    assert_eq!(
        at(datetime!(2027-01-02 23:59:59 +01:00)),
        ("permanence".into(), vec![camille])
    );
    assert_eq!(
        at(datetime!(2027-01-03 00:00:00 +01:00)),
        ("camille".into(), vec![None])
    );
}

#[test]
fn an_alert_climbs_to_the_present_deputies_then_to_the_other_fallback_referents() {
    use time::macros::datetime;
    let text = ABSENCES.replacen(
        "networks = [\"ccas\"]",
        "networks = [\"ccas\"]\n        escalate_after = { urgent = \"2h\", normal = \"2d\" }",
        1,
    );
    let registry = Registry::from_toml(&text, france()).unwrap();
    let orientation = kind("orientation_sociale");
    assert_eq!(
        registry.escalate_after(&orientation, Priority::Urgent),
        Some(Duration::from_secs(2 * 3600))
    );
    assert_eq!(
        registry.escalate_after(&orientation, Priority::Normal),
        Some(Duration::from_secs(2 * 24 * 3600))
    );
    assert_eq!(
        registry.escalate_after(&kind("autre"), Priority::Urgent),
        None
    );
    let tiers = |instant| {
        let tiers = registry
            .escalation_tiers(&orientation, commune("75113"), instant)
            .unwrap();
        tiers
            .iter()
            .map(|t| {
                let names = |list: &[&Referent]| {
                    list.iter()
                        .map(|r| r.id().to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                format!(
                    "{}: {} / {}",
                    t.network,
                    names(&t.deputies),
                    names(&t.fallback)
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        tiers(datetime!(2026-12-01 10:00:00 +01:00)),
        ["ccas: dominique,sacha / permanence"]
    );
    // Camille and Dominique away: Sacha, standing in, had the alert
    // first; the next step is the fallback.
    assert_eq!(
        tiers(datetime!(2026-12-31 10:00:00 +01:00)),
        ["ccas:  / permanence"]
    );
}

#[test]
fn a_wait_that_is_no_duration_or_out_of_bounds_is_refused() {
    let text = ABSENCES.replacen(
        "networks = [\"ccas\"]",
        "networks = [\"ccas\"]\n        escalate_after = { urgent = \"soon\", normal = \"90d\" }",
        1,
    );
    let RegistryError::Invalid { errors, .. } = Registry::from_toml(&text, france()).unwrap_err()
    else {
        panic!("refused for another reason")
    };
    assert_eq!(
        errors,
        [
            r#"route #1 (kind "orientation_sociale"): `escalate_after.urgent` must be a duration such as "2h" or "2d""#,
            r#"route #1 (kind "orientation_sociale"): `escalate_after.normal` must be between 1s and 30d"#,
        ]
    );
}

#[test]
fn every_error_of_the_deputies_and_absences_is_listed() {
    let broken = r#"
        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas", "cpam"]

        [[referent]]
        id = "a"
        network = "ccas"
        email = "a@example.org"
        communes = ["75113"]
        deputies = ["a", "nobody", "c"]
        absences = [{ from = "2027-01-02", to = "2026-12-24" }, { from = "2026-12-24", to = "2026-12-25" }]

        [[referent]]
        id = "b"
        network = "ccas"
        email = "b@example.org"
        communes = ["75114"]
        deputies = ["d"]
        absences = [{ from = "2026-08-01", to = "2026-08-15" }]

        [[referent]]
        id = "c"
        network = "cpam"
        email = "c@example.org"
        departements = ["75"]

        [[referent]]
        id = "d"
        network = "ccas"
        email = "d@example.org"
        communes = ["75115"]
        deputies = ["b"]
        absences = [{ from = "2026-08-10", to = "2026-08-20" }]
    "#;
    let RegistryError::Invalid { errors, .. } = Registry::from_toml(broken, france()).unwrap_err()
    else {
        panic!("not refused as invalid");
    };
    assert_eq!(
        errors,
        [
            r#"referent #1 ("a"): absence #1: `to` is before `from`"#,
            r#"referent #1 ("a"): lists itself among its deputies"#,
            r#"referent #1 ("a"): deputy "nobody" is not a référent of the registry"#,
            r#"referent #1 ("a"): deputy "c" is of network "cpam", not "ccas": a deputy stands in within its network"#,
            r#"referent #1 ("a"): on 2026-12-24 it is absent, and so are all its deputies and its network's fallback référents: its alerts would reach nobody in its place"#,
            r#"referent #2 ("b"): on 2026-08-10 it is absent, and so are all its deputies and its network's fallback référents: its alerts would reach nobody in its place"#,
            r#"referent #4 ("d"): on 2026-08-10 it is absent, and so are all its deputies and its network's fallback référents: its alerts would reach nobody in its place"#,
        ]
    );
}

/// [`REGISTRY`] with the CCAS open on weekdays, 09:00-17:00, and the CPAM
/// of La Réunion on weekday mornings.
fn with_hours() -> Registry {
    let text = format!(
        "{REGISTRY}
    [[network]]
    name = \"ccas\"
    hours = {{ mon-fri = \"09:00-17:00\" }}
    "
    )
    .replace(
        "email = \"referent@cpam-reunion.example.org\"",
        "email = \"referent@cpam-reunion.example.org\"\n    hours = { mon-fri = \"08:00-12:00\" }",
    );
    Registry::from_toml(&text, france()).unwrap()
}

fn paris(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

#[test]
fn a_friday_evening_alert_s_step_falls_after_two_open_hours_on_monday() {
    let registry = with_hours();
    let friday_evening = paris("2026-12-04T18:00:00+01:00");

    let due = registry.step_due(
        &kind("orientation_sociale"),
        commune("75113"),
        friday_evening,
        Duration::from_secs(2 * 3600),
    );

    assert_eq!(due, paris("2026-12-07T11:00:00+01:00"));
}

#[test]
fn a_step_counts_open_time_in_the_office_s_own_zone_and_wall_time_without_hours() {
    let registry = with_hours();
    // 14:00 in Paris is 17:00 in La Réunion: the CPAM there has closed;
    // its mornings are 08:00-12:00 Réunion time (04:00-08:00 UTC).
    let afternoon = paris("2026-12-04T14:00:00+01:00");
    let hour = Duration::from_secs(3600);

    let cpam = registry.step_due(&kind("acces_aux_droits"), commune("97411"), afternoon, hour);
    let without = Registry::from_toml(REGISTRY, france()).unwrap().step_due(
        &kind("acces_aux_droits"),
        commune("97411"),
        afternoon,
        hour,
    );

    // The CAF of the same alert declares no hours: its step would fall at
    // 15:00; the CPAM's on Monday 09:00 Réunion time; the latest stands.
    assert_eq!(cpam, paris("2026-12-07T05:00:00Z"));
    assert_eq!(without, paris("2026-12-04T15:00:00+01:00"));
}

#[test]
fn hours_and_zones_that_cannot_be_read_are_refused_with_every_error() {
    let broken = format!(
        "{REGISTRY}
    [[network]]
    name = \"ccas\"
    hours = {{ mon-fri = \"17:00-09:00\", funday = \"09:00-12:00\" }}

    [[network]]
    name = \"restos\"
    hours = {{ sat = \"09:00-12:00\" }}

    [[network]]
    name = \"caf\"
    time_zone = \"Europe/Paris\"
    "
    );

    let RegistryError::Invalid { errors, .. } = Registry::from_toml(&broken, france()).unwrap_err()
    else {
        panic!("not refused as invalid");
    };

    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0].starts_with("network #1 (\"ccas\"): hours: "),
        "{errors:#?}"
    );
    assert!(
        errors[1].starts_with("network #1 (\"ccas\"): hours: "),
        "{errors:#?}"
    );
    assert_eq!(
        errors[2],
        "network #2 (\"restos\"): no référent is of this network"
    );
    assert_eq!(
        errors[3],
        "network #3 (\"caf\"): time_zone is given without hours: it says in which zone the hours are"
    );
}

#[test]
fn an_alert_s_author_is_its_route_s_else_its_publisher_s_and_a_contact_must_be_an_address() {
    let text = format!(
        "{REGISTRY}
    [[route]]
    kind = \"demande_visite\"
    networks = [\"ccas\"]
    author = \"le CCAS\"

    [[publisher]]
    user = \"sos75\"
    association = \"SOS Médecins Paris\"
    departements = [\"75\"]
    author = \"un médecin\"
    contact = \"Régulation <regulation@sos75.example.org>\"
    "
    );
    let registry = Registry::from_toml(&text, france()).unwrap();
    let broken = text.replace("Régulation <regulation@sos75.example.org>", "la régulation");

    let RegistryError::Invalid { errors, .. } = Registry::from_toml(&broken, france()).unwrap_err()
    else {
        panic!("not refused as invalid");
    };

    assert_eq!(
        registry.author(&kind("demande_visite"), "sos75"),
        Some("le CCAS")
    );
    assert_eq!(
        registry.author(&kind("orientation_sociale"), "sos75"),
        Some("un médecin")
    );
    assert_eq!(registry.author(&kind("orientation_sociale"), "other"), None);
    assert_eq!(
        registry
            .publishers()
            .contact("sos75")
            .map(|m| m.email.to_string())
            .as_deref(),
        Some("regulation@sos75.example.org")
    );
    assert_eq!(
        errors,
        [
            "publisher #1 (\"sos75\"): `contact` must be an email address (e.g. \"regulation@sos75.example.org\")"
        ]
    );
}

/// An absence declared outside the registry file.
fn declared(referent: &str, from: &str, to: &str, deputy: Option<&str>) -> ExtraAbsence {
    ExtraAbsence {
        referent: ReferentId::parse(referent).unwrap(),
        absence: crate::availability::Absence::parse(from, to).unwrap(),
        deputy: deputy.map(|d| ReferentId::parse(d).unwrap()),
    }
}

#[test]
fn a_declared_absence_counts_as_the_registry_s_and_its_chosen_deputy_stands_in() {
    use time::macros::datetime;
    let registry = Registry::from_toml(ABSENCES, france()).unwrap();
    let resolve = |extra: &ExtraAbsences| {
        let resolution = registry
            .resolve_with(
                &kind("orientation_sociale"),
                commune("75113"),
                datetime!(2026-12-10 10:00:00 +01:00),
                extra,
            )
            .unwrap();
        let behalf: Vec<Option<String>> = resolution
            .referents()
            .map(|r| resolution.on_behalf_of(r).map(|a| a.id().to_string()))
            .collect();
        (ids(&resolution).join(","), behalf)
    };
    let camille = Some("camille".to_owned());

    let none = resolve(&ExtraAbsences::default());
    let away = resolve(&ExtraAbsences::new([declared(
        "camille",
        "2026-12-10",
        "2026-12-10",
        None,
    )]));
    let chosen = resolve(&ExtraAbsences::new([declared(
        "camille",
        "2026-12-09",
        "2026-12-11",
        Some("sacha"),
    )]));
    // The chosen deputy away too: the other present deputies.
    let chosen_away = resolve(&ExtraAbsences::new([
        declared("camille", "2026-12-09", "2026-12-11", Some("sacha")),
        declared("sacha", "2026-12-10", "2026-12-10", None),
    ]));
    // A choice that is not one of its deputies counts as no choice.
    let not_a_deputy = resolve(&ExtraAbsences::new([declared(
        "camille",
        "2026-12-10",
        "2026-12-10",
        Some("permanence"),
    )]));
    // The day after the absence, or an absence of someone else: no change.
    let other_day = resolve(&ExtraAbsences::new([declared(
        "camille",
        "2026-12-11",
        "2026-12-12",
        Some("sacha"),
    )]));

    assert_eq!(none, ("camille".into(), vec![None]));
    assert_eq!(
        away,
        (
            "dominique,sacha".into(),
            vec![camille.clone(), camille.clone()]
        )
    );
    assert_eq!(chosen, ("sacha".into(), vec![camille.clone()]));
    assert_eq!(chosen_away, ("dominique".into(), vec![camille.clone()]));
    assert_eq!(
        not_a_deputy,
        (
            "dominique,sacha".into(),
            vec![camille.clone(), camille.clone()]
        )
    );
    assert_eq!(other_day, ("camille".into(), vec![None]));
}

#[test]
fn declared_and_registry_absences_add_up_and_nobody_to_stand_in_leaves_the_referent_receiving() {
    use time::macros::{date, datetime};
    let registry = Registry::from_toml(ABSENCES, france()).unwrap();
    // Camille is away in the registry from 2026-12-24; Dominique declares
    // herself away on the 26th: Sacha alone stands in.
    let extra = ExtraAbsences::new([declared("dominique", "2026-12-26", "2026-12-26", None)]);
    let on = |instant, extra: &ExtraAbsences| {
        let resolution = registry
            .resolve_with(
                &kind("orientation_sociale"),
                commune("75113"),
                instant,
                extra,
            )
            .unwrap();
        ids(&resolution).join(",")
    };
    // Everyone of the network away that day: the registry's fallback too.
    let everyone = ExtraAbsences::new(
        ["camille", "dominique", "sacha", "permanence"]
            .map(|id| declared(id, "2026-12-10", "2026-12-10", None)),
    );
    let camille = registry.referent("camille").unwrap();

    assert_eq!(on(datetime!(2026-12-26 10:00:00 +01:00), &extra), "sacha");
    assert_eq!(
        on(datetime!(2026-12-10 10:00:00 +01:00), &everyone),
        "camille"
    );
    assert!(matches!(
        registry.stand_in(camille, date!(2026 - 12 - 10), &everyone),
        StandIn::Nobody
    ));
    assert!(matches!(
        registry.stand_in(camille, date!(2026 - 12 - 09), &everyone),
        StandIn::Present
    ));
    let StandIn::Fallback(fallback) =
        registry.stand_in(camille, date!(2027 - 01 - 02), &ExtraAbsences::default())
    else {
        panic!("the fallback stands in when every deputy is away");
    };
    assert_eq!(fallback[0].id().as_str(), "permanence");
    let StandIn::Deputies(deputies) = registry.stand_in(camille, date!(2026 - 12 - 26), &extra)
    else {
        panic!("a present deputy stands in");
    };
    assert_eq!(deputies[0].id().as_str(), "sacha");
    assert_eq!(
        registry
            .deputies_of(camille)
            .iter()
            .map(|d| d.id().as_str())
            .collect::<Vec<_>>(),
        ["dominique", "sacha"]
    );
    assert_eq!(
        registry.absences_of(camille),
        [crate::availability::Absence::parse("2026-12-24", "2027-01-02").unwrap()]
    );
}

#[test]
fn a_declared_absence_takes_the_referent_out_of_the_escalation_and_the_coverage() {
    use time::macros::{date, datetime};
    let text = ABSENCES.replacen(
        "networks = [\"ccas\"]",
        "networks = [\"ccas\"]\n        escalate_after = { urgent = \"2h\", normal = \"2d\" }",
        1,
    );
    let registry = Registry::from_toml(&text, france()).unwrap();
    let extra = ExtraAbsences::new([declared("dominique", "2026-12-01", "2026-12-01", None)]);
    let sacha_away = ExtraAbsences::new([
        declared("dominique", "2026-12-01", "2026-12-01", None),
        declared("sacha", "2026-12-01", "2026-12-01", None),
        declared("camille", "2026-12-01", "2026-12-01", None),
    ]);
    let tiers = registry
        .escalation_tiers_with(
            &kind("orientation_sociale"),
            commune("75113"),
            datetime!(2026-12-01 10:00:00 +01:00),
            &extra,
        )
        .unwrap();
    let location = france().location(commune("75113"));

    assert_eq!(tiers[0].deputies.len(), 1);
    assert_eq!(tiers[0].deputies[0].id().as_str(), "sacha");
    assert_eq!(
        registry.level_per_network_on(&location, date!(2026 - 12 - 01), &extra),
        [("ccas", Some(Level::Arrondissement))]
    );
    assert_eq!(
        registry.level_per_network_on(&location, date!(2026 - 12 - 01), &sacha_away),
        [("ccas", Some(Level::Fallback))]
    );
    assert_eq!(
        registry.level_per_network_on(&location, date!(2026 - 12 - 01), &ExtraAbsences::default()),
        [("ccas", Some(Level::Arrondissement))]
    );
}

#[test]
fn a_referent_s_phone_is_kept_as_written_and_a_malformed_one_is_refused() {
    let referent = |id: &str, phone: &str| {
        format!(
            "[[referent]]\nid = \"{id}\"\nnetwork = \"ccas\"\nemail = \"{id}@ccas.example.org\"\nphone = \"{phone}\"\ncommunes = [\"75113\"]\n"
        )
    };
    let route = "[[route]]\nkind = \"orientation_sociale\"\nnetworks = [\"ccas\"]\n";
    let good = [route.to_owned(), referent("a", "+33 1 53.00-00 (00)")].concat();
    let registry = Registry::from_toml(&good, france()).unwrap();
    assert_eq!(
        registry.referents()[0].phone().map(Phone::as_str),
        Some("+33 1 53.00-00 (00)")
    );

    let bad = [
        route.to_owned(),
        referent("letters", "01 53 OO 00 00"),
        referent("short", "12"),
        referent("long", "+33 1 53 00 00 00 00 00 00"),
    ]
    .concat();
    let RegistryError::Invalid { errors, .. } = Registry::from_toml(&bad, france()).unwrap_err()
    else {
        panic!("expected validation errors");
    };
    let rule = r#"phone must be 3 to 15 digits, with spaces, dots, hyphens, parentheses and one leading + (e.g. "01 53 00 00 00")"#;
    assert_eq!(
        errors,
        [
            format!(r#"referent #1 ("letters"): {rule}"#),
            format!(r#"referent #2 ("short"): {rule}"#),
            format!(r#"referent #3 ("long"): {rule}"#),
            r#"route #1 (kind "orientation_sociale"): network "ccas" has no référent"#.to_owned(),
        ]
    );
}

#[test]
fn a_registry_is_named_by_the_sha256_of_its_text_and_its_version_label() {
    let text = format!("version = \"2026-12 UNCCAS\"\n{REGISTRY}");

    let labelled = Registry::from_toml(&text, france()).unwrap();
    let unlabelled = registry();

    // `sha256sum` of the same text gives the same 64 digits.
    let expected: String = ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(labelled.digest(), expected);
    assert_eq!(labelled.digest().len(), 64);
    assert_eq!(labelled.version(), Some("2026-12 UNCCAS"));
    assert_eq!(
        labelled.provenance(),
        format!(
            "sha256:{} (version 2026-12 UNCCAS)",
            &labelled.digest()[..12]
        )
    );
    assert_eq!(unlabelled.version(), None);
    assert_eq!(
        unlabelled.provenance(),
        format!("sha256:{}", &unlabelled.digest()[..12])
    );
    assert_ne!(labelled.digest(), unlabelled.digest());
}

#[test]
fn a_version_label_must_be_one_short_printable_line() {
    for bad in ["", "  ", "two\nlines", &"x".repeat(65)] {
        let text = format!("version = {bad:?}\n{REGISTRY}");

        let error = Registry::from_toml(&text, france())
            .unwrap_err()
            .to_string();

        assert!(
            error.contains(
                "`version` must be one line of 1 to 64 printable characters (e.g. \"2026-12-06 UNCCAS\")"
            ),
            "{bad:?}: {error}"
        );
    }
    let longest = format!("version = {:?}\n{REGISTRY}", "é".repeat(64));
    assert!(Registry::from_toml(&longest, france()).is_ok());
}
