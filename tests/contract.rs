//! The written contract (`schema/alert.v1.json`, the examples) and the
//! parser must agree: what one accepts the other accepts.

use relais::alert::Alert;
use serde_json::{Value, json};

fn schema() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(include_str!("../schema/alert.v1.json")).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a valid JSON Schema")
}

fn example() -> Value {
    serde_json::from_str(include_str!("../examples/alert.json")).unwrap()
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
        include_str!("../examples/alert.json"),
        include_str!("../examples/acces-aux-droits.json"),
        include_str!("../examples/demande-visite.json"),
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
