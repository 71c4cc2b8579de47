//! The written contract (`schema/alert.v1.json`, the examples) and the
//! parser must agree: what one accepts the other accepts (but for what
//! only the parser can know: whether a code exists, whether a consent is
//! dated in the future).
//!
//! The message contract's invariants, over generated alerts (proptest):
//! well-formed ones, and ones with every field mangled (control
//! characters, wrong shapes, any Unicode).
//!
//! - the fuzz targets' checks (`fuzz/checks.rs`): an accepted alert, written
//!   back in the contract's form, parses to the same alert; no accepted
//!   one-line value holds a control character, and the summary none but
//!   line breaks and tabs: nothing can reach an email header;
//! - every email rendered from an accepted alert has the same headers, so
//!   no value can add one;
//! - a refused alert's error never quotes a patient value;
//! - any bytes at all are refused or accepted, never a panic.

use std::collections::BTreeSet;

use proptest::prelude::*;
use relais::alert::Alert;
use relais::mail::{Addressed, Renderer};
use relais::registry::Registry;
use serde_json::{Map, Value, json};

#[path = "../../fuzz/checks.rs"]
mod checks;

const MAX_BYTES: usize = 65_536;

/// Every patient value starts with it; no error may contain it.
const SENTINEL: &str = "PATIENT-SENTINEL";

fn schema() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(include_str!("../../schema/alert.v1.json")).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a valid JSON Schema")
}

fn example() -> Value {
    serde_json::from_str(include_str!("../../examples/alert.json")).unwrap()
}

fn patched(pointer: &str, value: Value) -> Value {
    let mut alert = example();
    *alert.pointer_mut(pointer).unwrap() = value;
    alert
}

#[test]
fn every_shipped_example_is_valid_for_both_the_schema_and_the_parser() {
    let schema = schema();
    for text in [
        include_str!("../../examples/alert.json"),
        include_str!("../../examples/acces-aux-droits.json"),
        include_str!("../../examples/demande-visite.json"),
    ] {
        let value: Value = serde_json::from_str(text).unwrap();
        assert!(schema.is_valid(&value), "schema refuses {text}");
        assert!(
            Alert::parse(text.as_bytes(), 65536, &relais_testkit::france()).is_ok(),
            "parser refuses {text}"
        );
    }
}

#[test]
fn the_schema_and_the_parser_refuse_the_same_alerts() {
    let schema = schema();
    let mut without_id = example();
    without_id.as_object_mut().unwrap().remove("id");
    let refused = [
        without_id,
        patched("/id", json!("")),
        patched("/id", json!("a b")),
        patched("/id", json!("x".repeat(129))),
        patched("/kind", json!("Orientation")),
        patched("/priority", json!("URGENT")),
        patched("/emitted_at", json!("2026-11-22")),
        patched("/association", json!("")),
        patched("/association", json!("two\nlines")),
        patched("/territory", json!({})),
        patched("/territory", json!({ "commune": "2C004" })),
        patched("/territory", json!({ "commune": "97901" })),
        patched("/territory", json!({ "departement": "20" })),
        patched("/territory", json!({ "departement": "985" })),
        patched("/summary", json!("")),
        patched("/summary", json!("é".repeat(4001))),
        patched("/patient", json!("a string")),
        patched("/patient/name", json!(42)),
        patched("/patient/phone", json!("01\r\n02")),
        patched("/contact", json!([1])),
        patched("/consent", json!("given")),
        patched("/consent", json!({ "status": "agreed" })),
        patched("/consent/given_by", json!("doctor")),
        patched("/consent/at", json!("2026-11-22")),
        patched(
            "/consent",
            json!({ "status": "given", "given_by": "person" }),
        ),
        patched("/consent", json!({ "status": "not_required" })),
        patched(
            "/consent",
            json!({ "status": "not_required", "basis": "convention" }),
        ),
    ];
    for alert in refused {
        assert!(!schema.is_valid(&alert), "schema accepts {alert}");
        assert!(
            Alert::parse(
                alert.to_string().as_bytes(),
                65536,
                &relais_testkit::france()
            )
            .is_err(),
            "parser accepts {alert}"
        );
    }
    let accepted = [
        patched(
            "/territory",
            json!({ "commune": "2A004", "departement": "2A" }),
        ),
        patched("/territory", json!({ "departement": "976" })),
        patched("/territory", json!({ "commune": "98818" })),
        patched("/territory", json!({ "commune": "98901" })),
        patched(
            "/territory",
            json!({ "commune": "20004", "departement": "2A" }),
        ),
        patched("/priority", Value::Null),
        patched("/patient", Value::Null),
        patched("/patient/name", json!("")),
        patched("/summary", json!("é".repeat(4000))),
        patched("/id", json!("SOS:75.2026_1-a")),
        patched("/consent", Value::Null),
        patched(
            "/consent",
            json!({ "status": "not_required", "basis": "legal_obligation" }),
        ),
        patched("/consent/at", json!("2026-11-22T07:10:00Z")),
    ];
    for alert in accepted {
        assert!(schema.is_valid(&alert), "schema refuses {alert}");
        assert!(
            Alert::parse(
                alert.to_string().as_bytes(),
                65536,
                &relais_testkit::france()
            )
            .is_ok(),
            "parser refuses {alert}"
        );
    }
}

#[test]
fn a_code_of_the_right_shape_must_also_exist_which_only_the_parser_knows() {
    let schema = schema();
    let patched = |code: &str| patched("/territory", json!({ "commune": code }));
    // Paris 13e's postal code, and a code no commune ever had.
    for code in ["75013", "75999"] {
        let alert = patched(code);
        assert!(schema.is_valid(&alert), "schema refuses {alert}");
        assert!(
            Alert::parse(
                alert.to_string().as_bytes(),
                65536,
                &relais_testkit::france()
            )
            .is_err(),
            "parser accepts {alert}"
        );
    }
}

#[test]
fn a_consent_dated_in_the_future_is_refused_which_only_the_parser_knows() {
    let schema = schema();
    let alert = patched("/consent/at", json!("2999-01-01T00:00:00Z"));

    let parsed = Alert::parse(
        alert.to_string().as_bytes(),
        65536,
        &relais_testkit::france(),
    );

    assert!(schema.is_valid(&alert), "schema refuses {alert}");
    assert_eq!(
        parsed.unwrap_err().to_string(),
        "field `consent.at` must not be in the future (more than 5 minutes ahead of relais's \
         clock)"
    );
}

/// Text that is sometimes clean and sometimes hostile.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => "[A-Za-zÀ-ÿ0-9 ,.'()-]{1,40}",
        1 => "[a-z \\r\\n\\t\\x00-\\x1f\\x7f\\u{85}\\u{2028}]{0,12}",
        1 => any::<String>(),
    ]
}

fn maybe<T: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![1 => Just(None), 4 => value.prop_map(Some)]
}

fn rarely<T: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![4 => Just(None), 1 => value.prop_map(Some)]
}

/// A value in the shape the contract wants, or sometimes another shape.
fn shaped(value: impl Strategy<Value = String>) -> impl Strategy<Value = Value> {
    prop_oneof![
        40 => value.prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(Value::Null),
    ]
}

fn alert_json() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![20 => "[A-Za-z0-9._:-]{1,30}", 1 => any::<String>()];
    let kind = prop_oneof![20 => "[a-z][a-z0-9_]{0,20}", 1 => any::<String>()];
    let priority = prop_oneof![
        10 => Just("urgent".to_owned()),
        10 => Just("normal".to_owned()),
        1 => any::<String>()
    ];
    let emitted_at = prop_oneof![
        20 => "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])",
        1 => any::<String>(),
    ];
    let commune = prop_oneof![
        20 => "[0-9]{5}",
        1 => "2[AB][0-9]{3}",
        1 => "9[78][0-9]{3}",
        1 => any::<String>(),
    ];
    let departement = prop_oneof![
        4 => "[0-9]{2}",
        1 => "2[AB]",
        1 => "9[78][0-9]",
        1 => any::<String>()
    ];
    let summary = prop_oneof![
        20 => "[A-Za-zÀ-ÿ0-9 ,.'\\n\\t-]{1,200}",
        1 => "[a-z\\r\\n\\t\\x00-\\x1f]{0,20}",
        1 => any::<String>(),
    ];
    let patient = (maybe(text()), maybe(text()), maybe(text()), maybe(text()));
    let contact = (maybe(text()), maybe(text()));
    let given_by = prop_oneof![
        10 => prop_oneof![
            Just("person".to_owned()),
            Just("legal_representative".to_owned()),
            Just("trusted_person".to_owned()),
        ],
        1 => any::<String>(),
    ];
    // Mostly in the past; sometimes in the future, which is refused.
    let at = prop_oneof![
        20 => "20(0[0-9]|1[0-9]|2[0-5])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])",
        1 => "2[1-9][0-9]{2}-0[1-9]-1[0-9]T10:00:00Z",
        1 => any::<String>(),
    ];
    let basis = prop_oneof![
        10 => prop_oneof![
            Just("vital_interest".to_owned()),
            Just("legal_obligation".to_owned()),
        ],
        1 => any::<String>(),
    ];
    let consent = prop_oneof![
        2 => Just(Value::Null),
        10 => (shaped(given_by), shaped(at)).prop_map(|(by, at)| {
            json!({ "status": "given", "given_by": by, "at": at })
        }),
        4 => shaped(basis).prop_map(|basis| json!({ "status": "not_required", "basis": basis })),
        1 => shaped(text()),
    ];
    (
        (
            shaped(id),
            shaped(kind),
            maybe(priority),
            shaped(emitted_at),
            shaped(text()),
        ),
        (maybe(commune), rarely(departement)),
        shaped(summary),
        patient,
        contact,
        consent,
    )
        .prop_map(
            |(
                (id, kind, priority, emitted_at, association),
                (commune, departement),
                summary,
                patient,
                contact,
                consent,
            )| {
                let mut territory = Map::new();
                if let Some(commune) = commune {
                    territory.insert("commune".into(), commune.into());
                }
                if let Some(departement) = departement {
                    territory.insert("departement".into(), departement.into());
                }
                let sentinel = |value: Option<String>| value.map(|v| format!("{SENTINEL}{v}"));
                let alert = json!({
                    "id": id,
                    "kind": kind,
                    "priority": priority,
                    "emitted_at": emitted_at,
                    "association": association,
                    "territory": territory,
                    "summary": summary,
                    "patient": {
                        "reference": sentinel(patient.0),
                        "name": sentinel(patient.1),
                        "address": sentinel(patient.2),
                        "phone": sentinel(patient.3),
                    },
                    "contact": { "name": contact.0, "phone": contact.1 },
                    "consent": consent,
                });
                alert.to_string().into_bytes()
            },
        )
}

fn registry() -> Registry {
    Registry::from_toml(
        r#"
        [[route]]
        kind = "orientation_sociale"
        networks = ["ccas"]
        [[referent]]
        id = "ccas-paris-13"
        network = "ccas"
        name = "Camille Martin"
        email = "camille.martin@ccas-paris13.example.org"
        communes = ["75113"]
        "#,
        &relais_testkit::france(),
    )
    .unwrap()
}

/// The names of the headers of a rendered email.
fn header_names(alert: &Alert) -> BTreeSet<String> {
    let renderer =
        Renderer::new("relais <relais@sos75.example.org>".parse().unwrap(), true).unwrap();
    let registry = registry();
    let message = renderer
        .render(
            relais::mail::Published {
                alert,
                publisher: "",
            },
            &registry.referents()[0],
            relais::mail::Wording {
                kind_label: "Orientation sociale",
                author: None,
                reply_to: None,
            },
            &relais_testkit::france().describe(alert.territory()),
            Addressed::Directly,
            relais::mail::PageLinks::default(),
        )
        .unwrap();
    let raw = String::from_utf8(message.bytes().to_vec()).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap();
    head.split("\r\n")
        .filter(|line| !line.starts_with([' ', '\t']))
        .map(|line| line.split(':').next().unwrap().to_ascii_lowercase())
        .collect()
}

fn reference_headers() -> BTreeSet<String> {
    let body = r#"{"id":"SOS75-1","kind":"orientation_sociale","emitted_at":"2026-11-22T08:15:00+01:00",
        "association":"SOS Médecins Paris","territory":{"commune":"75113"},"summary":"Isolée.",
        "consent":{"status":"given","given_by":"person","at":"2026-11-22T08:10:00+01:00"}}"#;
    header_names(&Alert::parse(body.as_bytes(), MAX_BYTES, &relais_testkit::france()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The fuzz targets' checks (`fuzz/checks.rs`): an accepted alert
    /// parses back to itself and holds no control character.
    #[test]
    fn every_generated_alert_passes_the_fuzz_checks(body in alert_json()) {
        checks::alert(&body);
    }

    #[test]
    fn every_email_has_the_same_headers_whatever_the_alert_says(body in alert_json()) {
        if let Ok(alert) = Alert::parse(&body, MAX_BYTES, &relais_testkit::france()) {
            prop_assert_eq!(header_names(&alert), reference_headers());
        }
    }

    #[test]
    fn a_refusal_never_quotes_a_patient_value(body in alert_json()) {
        if let Err(error) = Alert::parse(&body, MAX_BYTES, &relais_testkit::france()) {
            prop_assert!(!error.to_string().contains(SENTINEL), "{}", error);
        }
    }

    #[test]
    fn any_bytes_are_refused_or_accepted_without_a_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Alert::parse(&body, MAX_BYTES, &relais_testkit::france());
    }
}

/// The generator reaches both sides: without this, a generator that never
/// produced a valid alert would make the properties above vacuous.
#[test]
fn the_generator_makes_valid_and_invalid_alerts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = alert_json();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..2_000 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        match Alert::parse(&body, MAX_BYTES, &relais_testkit::france()) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(accepted >= 100, "{accepted} accepted of 2,000");
    assert!(refused >= 100, "{refused} refused of 2,000");
}
