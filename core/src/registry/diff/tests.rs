//! The diff's tests, on real communes of the Gers.

use super::*;
use crate::geography::tests::france;

const OLD: &str = r#"
    [[route]]
    kind = "orientation_sociale"
    networks = ["ccas"]

    [[referent]]
    id = "ccas-beccas"
    network = "ccas"
    email = "ccas@beccas.example.org"
    communes = ["32039"]

    [[referent]]
    id = "ccas-marciac"
    network = "ccas"
    email = "ccas@marciac.example.org"
    phone = "05 62 00 00 00"
    communes = ["32233"]

    [[referent]]
    id = "ccas-national"
    network = "ccas"
    email = "permanence@ccas.example.org"
    fallback = true

    [[referent]]
    id = "cpam-gers"
    network = "cpam"
    email = "referent@cpam-gers.example.org"
    departements = ["32"]
"#;

fn diff(old: &str, new: &str) -> RegistryDiff {
    let old = Registry::from_toml(old, france()).unwrap();
    let new = Registry::from_toml(new, france()).unwrap();
    RegistryDiff::between(&old, &new)
}

#[test]
fn a_registry_compared_with_itself_changes_nothing() {
    let diff = diff(OLD, OLD);

    assert!(diff.is_empty(), "{diff:?}");
    assert_eq!(diff.communes_changed(), (0, 0));
}

#[test]
fn a_commune_whose_referent_is_removed_falls_to_the_network_s_fallback() {
    let new = OLD.replace(
        r#"id = "ccas-beccas"
    network = "ccas"
    email = "ccas@beccas.example.org"
    communes = ["32039"]"#,
        r#"id = "ccas-sarragachies"
    network = "ccas"
    email = "ccas@sarragachies.example.org"
    communes = ["32414"]"#,
    );

    let diff = diff(OLD, &new);

    let entry = |id: &str| ReferentEntry {
        id: id.to_owned(),
        network: "ccas".to_owned(),
    };
    assert_eq!(diff.added, [entry("ccas-sarragachies")]);
    assert_eq!(diff.removed, [entry("ccas-beccas")]);
    assert!(diff.changed.is_empty());
    let recipients = |level, ids: &[&str]| {
        Some(Recipients {
            level,
            referents: ids.iter().map(|id| (*id).to_owned()).collect(),
        })
    };
    let [changes] = diff.recipients.as_slice() else {
        panic!("{:?}", diff.recipients);
    };
    assert_eq!(
        (changes.network.as_str(), changes.kind.as_str()),
        ("ccas", "orientation_sociale")
    );
    let communes: Vec<(String, &str, Option<Recipients>, Option<Recipients>)> = changes
        .communes
        .iter()
        .map(|c| {
            (
                c.commune.to_string(),
                c.name.as_str(),
                c.old.clone(),
                c.new.clone(),
            )
        })
        .collect();
    assert_eq!(
        communes,
        [
            (
                "32039".to_owned(),
                "Beccas",
                recipients(Level::Commune, &["ccas-beccas"]),
                recipients(Level::Fallback, &["ccas-national"])
            ),
            (
                "32414".to_owned(),
                "Sarragachies",
                recipients(Level::Fallback, &["ccas-national"]),
                recipients(Level::Commune, &["ccas-sarragachies"])
            ),
        ]
    );
    assert_eq!(diff.communes_changed(), (2, 122 + 217));
}

#[test]
fn a_changed_email_phone_and_commune_list_are_said_field_by_field() {
    let new = OLD
        .replace("ccas@marciac.example.org", "accueil@marciac.example.org")
        .replace("05 62 00 00 00", "05 62 11 11 11")
        .replace(
            r#"communes = ["32233"]"#,
            r#"communes = ["32233", "32414"]"#,
        );

    let diff = diff(OLD, &new);

    let [change] = diff.changed.as_slice() else {
        panic!("{:?}", diff.changed);
    };
    assert_eq!(change.id, "ccas-marciac");
    assert_eq!(
        change.fields,
        [
            FieldChange::Value {
                field: "email",
                old: Some("ccas@marciac.example.org".into()),
                new: Some("accueil@marciac.example.org".into()),
            },
            FieldChange::Value {
                field: "phone",
                old: Some("05 62 00 00 00".into()),
                new: Some("05 62 11 11 11".into()),
            },
            FieldChange::Territories {
                field: "communes",
                added: vec!["32414".into()],
                removed: vec![],
            },
        ]
    );
    assert_eq!(diff.communes_changed(), (1, 217));
}

#[test]
fn a_network_added_to_a_route_changes_every_commune_it_serves_for_that_kind() {
    let new = OLD.replace(r#"networks = ["ccas"]"#, r#"networks = ["ccas", "cpam"]"#);

    let diff = diff(OLD, &new);

    assert_eq!(
        diff.routes,
        [RouteChange {
            kind: "orientation_sociale".into(),
            field: "networks",
            old: Some("ccas".into()),
            new: Some("ccas, cpam".into()),
        }]
    );
    let [changes] = diff.recipients.as_slice() else {
        panic!("{:?}", diff.recipients);
    };
    assert_eq!(changes.network, "cpam");
    let gers = france()
        .units()
        .filter(|u| u.commune.departement().as_str() == "32")
        .count();
    assert_eq!(changes.communes.len(), gers);
    assert!(changes.communes.iter().all(|c| {
        c.old.is_none()
            && c.new
                .as_ref()
                .is_some_and(|r| r.level == Level::Departement)
    }));
}

#[test]
fn a_publisher_s_narrowed_kinds_are_a_change_and_one_removed_is_said() {
    let gers = r#"
    [[publisher]]
    user = "sos32-dispatch"
    association = "SOS Médecins Gers"
    departements = ["32"]
    "#;
    let toulouse = r#"
    [[publisher]]
    user = "sos31-dispatch"
    association = "SOS Médecins Toulouse"
    everywhere = true
    "#;
    let narrowed = format!("{gers}kinds = [\"orientation_sociale\"]\n");
    let old = format!("{OLD}{gers}{toulouse}");
    let new = format!("{OLD}{narrowed}");

    let diff = diff(&old, &new);

    assert_eq!(
        diff.publishers,
        [
            PublisherChange {
                user: "sos31-dispatch".into(),
                change: "removed",
                fields: ["association", "territories", "kinds", "author", "contact"]
                    .into_iter()
                    .zip(["SOS Médecins Toulouse", "everywhere", "all", "none", "none"])
                    .map(|(field, old)| FieldChange::Value {
                        field,
                        old: Some(old.into()),
                        new: None,
                    })
                    .collect(),
            },
            PublisherChange {
                user: "sos32-dispatch".into(),
                change: "changed",
                fields: vec![FieldChange::Value {
                    field: "kinds",
                    old: Some("all".into()),
                    new: Some("orientation_sociale".into()),
                }],
            },
        ]
    );
    assert!(diff.recipients.is_empty());
    assert!(!diff.is_empty());
}
