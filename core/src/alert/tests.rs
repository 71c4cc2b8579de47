use super::*;

const MAX: usize = 65536;

fn example() -> Value {
    serde_json::json!({
        "id": "SOS75-2026-000123",
        "kind": "orientation_sociale",
        "priority": "urgent",
        "emitted_at": "2026-11-22T08:15:00+01:00",
        "association": "SOS Médecins Paris",
        "territory": { "commune": "75113" },
        "summary": "Personne âgée isolée, sans aide à domicile, chute récente.",
        "patient": { "reference": "D-2026-4411", "name": "Mme Jeanne Durand",
                     "address": "12 rue de la Santé, 75013 Paris", "phone": "01 45 00 00 00" },
        "contact": { "name": "Dr Martin", "phone": "01 47 07 77 77" },
        "consent": { "status": "given", "given_by": "person", "at": "2026-11-22T08:10:00+01:00" }
    })
}

/// The instant the tests parse at: a fortnight after the example.
fn now() -> OffsetDateTime {
    OffsetDateTime::parse("2026-12-06T05:00:00Z", &Rfc3339).unwrap()
}

fn parse(value: &Value) -> Result<Alert, InvalidAlert> {
    Alert::parse_at(
        value.to_string().as_bytes(),
        MAX,
        crate::geography::tests::france(),
        now(),
    )
}

fn with(mut value: Value, pointer: &str, replacement: Value) -> Value {
    *value.pointer_mut(pointer).unwrap() = replacement;
    value
}

fn without(mut value: Value, field: &str) -> Value {
    value.as_object_mut().unwrap().remove(field);
    value
}

fn field_error(value: &Value) -> (&'static str, String) {
    match parse(value) {
        Err(InvalidAlert::Field { field, problem }) => (field, problem),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn the_contract_example_parses_into_its_parts() {
    let alert = parse(&example()).unwrap();
    assert_eq!(alert.id().as_str(), "SOS75-2026-000123");
    assert_eq!(alert.kind().as_str(), "orientation_sociale");
    assert_eq!(alert.priority(), Priority::Urgent);
    assert_eq!(alert.emitted_at().offset().whole_hours(), 1);
    assert_eq!(alert.association(), "SOS Médecins Paris");
    assert_eq!(alert.territory().commune().unwrap().as_str(), "75113");
    assert_eq!(alert.territory().departement().as_str(), "75");
    assert_eq!(alert.patient().reference.as_deref(), Some("D-2026-4411"));
    assert_eq!(alert.contact().phone.as_deref(), Some("01 47 07 77 77"));
    assert_eq!(
        alert.consent(),
        Some(Consent::Given {
            by: GivenBy::Person,
            at: OffsetDateTime::parse("2026-11-22T08:10:00+01:00", &Rfc3339).unwrap(),
        })
    );
}

#[test]
fn optional_parts_default_and_unknown_fields_are_ignored() {
    let mut value = without(
        without(
            without(without(example(), "priority"), "patient"),
            "contact",
        ),
        "consent",
    );
    value["future_field"] = serde_json::json!({"anything": [1, 2]});
    let alert = parse(&value).unwrap();
    assert_eq!(alert.priority(), Priority::Normal);
    assert_eq!(alert.patient(), &Patient::default());
    assert_eq!(alert.contact(), &Contact::default());
    assert_eq!(alert.consent(), None);
}

#[test]
fn every_required_field_is_required() {
    for field in [
        "id",
        "kind",
        "emitted_at",
        "association",
        "territory",
        "summary",
    ] {
        assert_eq!(
            parse(&without(example(), field)).unwrap_err().to_string(),
            format!("field `{field}` is required")
        );
        let null = with(example(), &format!("/{field}"), Value::Null);
        assert_eq!(field_error(&null).1, "is required");
    }
}

#[test]
fn the_id_is_checked() {
    for id in ["", "a b", "SOS75/2026", "é", &"x".repeat(129)] {
        let (field, _) = field_error(&with(example(), "/id", id.into()));
        assert_eq!(field, "id", "{id:?}");
    }
    assert!(parse(&with(example(), "/id", "a.B_9:-".into())).is_ok());
    assert!(parse(&with(example(), "/id", "x".repeat(128).into())).is_ok());
}

#[test]
fn the_kind_must_be_an_identifier() {
    for kind in [
        "",
        "Orientation",
        "9x",
        "orientation-sociale",
        "a b",
        &"a".repeat(65),
    ] {
        assert_eq!(
            field_error(&with(example(), "/kind", kind.into())).0,
            "kind"
        );
    }
}

#[test]
fn the_priority_is_urgent_or_normal() {
    let (field, problem) = field_error(&with(example(), "/priority", "URGENT".into()));
    assert_eq!(
        (field, problem.as_str()),
        ("priority", "must be `urgent` or `normal`")
    );
    let normal = parse(&with(example(), "/priority", "normal".into())).unwrap();
    assert_eq!(normal.priority(), Priority::Normal);
}

#[test]
fn emitted_at_must_be_rfc3339() {
    for date in ["2026-11-22", "22/11/2026 08:15", "2026-11-22T08:15:00"] {
        assert_eq!(
            field_error(&with(example(), "/emitted_at", date.into())).0,
            "emitted_at"
        );
    }
    assert!(
        parse(&with(
            example(),
            "/emitted_at",
            "2026-11-22T07:15:00Z".into()
        ))
        .is_ok()
    );
}

#[test]
fn the_territory_needs_a_valid_commune_or_departement() {
    let value = with(example(), "/territory", serde_json::json!({}));
    assert_eq!(field_error(&value).0, "territory");
    let value = with(
        example(),
        "/territory",
        serde_json::json!({"commune": "7511"}),
    );
    assert_eq!(field_error(&value).0, "territory.commune");
    let value = with(
        example(),
        "/territory",
        serde_json::json!({"departement": "20"}),
    );
    assert_eq!(field_error(&value).0, "territory.departement");
    let value = with(
        example(),
        "/territory",
        serde_json::json!({"departement": "2A"}),
    );
    assert_eq!(
        parse(&value).unwrap().territory().departement().as_str(),
        "2A"
    );
}

#[test]
fn the_summary_is_bounded_and_keeps_its_lines() {
    let long = "é".repeat(SUMMARY_MAX_CHARS + 1);
    assert_eq!(
        field_error(&with(example(), "/summary", long.into())).0,
        "summary"
    );
    let exact = "é".repeat(SUMMARY_MAX_CHARS);
    assert!(parse(&with(example(), "/summary", exact.into())).is_ok());
    assert_eq!(
        field_error(&with(example(), "/summary", "  \n ".into())).0,
        "summary"
    );
    assert_eq!(
        field_error(&with(example(), "/summary", "a\u{7}b".into())).0,
        "summary"
    );
    let lines = parse(&with(
        example(),
        "/summary",
        "ligne 1\r\nligne 2\n\tfin".into(),
    ));
    assert_eq!(lines.unwrap().summary(), "ligne 1\nligne 2\n\tfin");
}

#[test]
fn one_line_fields_refuse_line_breaks() {
    for pointer in ["/association", "/patient/name", "/contact/phone"] {
        let value = with(example(), pointer, "Dr X\r\nBcc: x@evil.example".into());
        let (_, problem) = field_error(&value);
        assert_eq!(problem, "must be a single line without control characters");
    }
}

#[test]
fn errors_never_quote_patient_values() {
    let sentinel = "PATIENT-SENTINEL-42";
    let cases = [
        with(example(), "/patient", sentinel.into()),
        with(example(), "/patient/name", serde_json::json!([sentinel])),
        with(
            example(),
            "/patient/address",
            format!("{sentinel}\n").into(),
        ),
        with(example(), "/contact", serde_json::json!([sentinel])),
        with(example(), "/summary", format!("{sentinel}\u{0}").into()),
        with(example(), "/territory", sentinel.into()),
        with(example(), "/territory/commune", sentinel.into()),
        with(
            example(),
            "/association",
            serde_json::json!({ "x": sentinel }),
        ),
        with(example(), "/id", format!("{sentinel} ").into()),
    ];
    for value in cases {
        let error = parse(&value).unwrap_err().to_string();
        assert!(!error.contains(sentinel), "{error}");
    }
}

#[test]
fn oversized_non_utf8_and_non_json_bodies_are_invalid() {
    let body = example().to_string();
    assert_eq!(
        Alert::parse(body.as_bytes(), 100, crate::geography::tests::france()),
        Err(InvalidAlert::TooLarge {
            size: body.len(),
            max: 100
        })
    );
    assert_eq!(
        Alert::parse(
            b"{\"id\": \"\xff\"}",
            MAX,
            crate::geography::tests::france()
        ),
        Err(InvalidAlert::NotUtf8)
    );
    assert!(matches!(
        Alert::parse(b"not json", MAX, crate::geography::tests::france()),
        Err(InvalidAlert::NotJson(_))
    ));
    assert_eq!(
        Alert::parse(b"[1, 2]", MAX, crate::geography::tests::france())
            .unwrap_err()
            .to_string(),
        "field `the alert` must be a JSON object"
    );
}

#[test]
fn debug_output_carries_no_patient_data() {
    let alert = parse(&example()).unwrap();
    let debug = format!("{alert:?} {:?} {:?}", alert.patient(), alert.contact());
    assert!(!debug.contains("Durand") && !debug.contains("Martin") && !debug.contains("01 4"));
    assert!(debug.contains("SOS75-2026-000123"));
}

fn hex(digest: [u8; 32]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn the_unkeyed_digest_of_an_alert_is_pinned_as_the_stores_of_earlier_releases_hold_it() {
    // Stores written before the digests were keyed hold these bytes: a
    // change would make every alert delivered then a conflict with its own
    // copies.
    let full = parse(&without(example(), "consent")).unwrap();
    let bare = parse(&serde_json::json!({
        "id": "SOS01-7",
        "kind": "orientation_sociale",
        "emitted_at": "2026-11-22T23:59:30-05:00",
        "association": "SOS Médecins Ain",
        "territory": { "commune": "01039" },
        "summary": "Isolement.",
    }))
    .unwrap();
    assert!(bare.territory().mapped().is_some());

    assert_eq!(
        hex(full.unkeyed_digest()),
        "8df07dcbd0f9540278db442588d6b725f6b4131d955fe30edd3975f3029ad00d"
    );
    assert_eq!(
        hex(bare.unkeyed_digest()),
        "37d59235eaf12f5f9a2ffcdddb9df82c5727a38f162ebe625a68796ec1a60e57"
    );
}

#[test]
fn the_same_alert_laid_out_differently_has_one_digest_and_another_has_another() {
    let alert = parse(&example()).unwrap();
    let relaid = Alert::parse(
        serde_json::to_string_pretty(&example()).unwrap().as_bytes(),
        MAX,
        crate::geography::tests::france(),
    )
    .unwrap();
    let mut other = example();
    other["territory"]["commune"] = "75112".into();
    let other = parse(&other).unwrap();

    assert_eq!(alert.digest(&KEY), relaid.digest(&KEY));
    assert_ne!(alert.digest(&KEY), other.digest(&KEY));
}

static KEY: std::sync::LazyLock<ring::hmac::Key> =
    std::sync::LazyLock::new(|| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[7; 32]));

#[test]
fn the_digest_is_keyed_so_that_without_the_key_a_guess_cannot_be_checked_against_it() {
    let alert = parse(&example()).unwrap();
    let other_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[8; 32]);

    let keyed = alert.digest(&KEY);

    assert_eq!(
        hex(keyed),
        "7e2817c9a7a1354adfc8ba41784ebd90d3a5261ad5fcb171a19235813663b6c4"
    );
    assert_ne!(keyed, alert.unkeyed_digest());
    assert_ne!(keyed, alert.digest(&other_key));
}

#[test]
fn a_consent_given_says_by_whom_and_when_and_one_not_required_says_why() {
    let cases = [
        (
            serde_json::json!({ "status": "given", "given_by": "legal_representative",
                                "at": "2026-11-22T07:10:00.250Z" }),
            "given:legal_representative:2026-11-22T07:10:00Z",
        ),
        (
            serde_json::json!({ "status": "given", "given_by": "trusted_person",
                                "at": "2026-11-22T08:10:00+01:00", "note": "ignored" }),
            "given:trusted_person:2026-11-22T07:10:00Z",
        ),
        (
            serde_json::json!({ "status": "not_required", "basis": "vital_interest" }),
            "not_required:vital_interest",
        ),
        (
            serde_json::json!({ "status": "not_required", "basis": "legal_obligation" }),
            "not_required:legal_obligation",
        ),
    ];
    for (consent, code) in cases {
        let alert = parse(&with(example(), "/consent", consent)).unwrap();
        assert_eq!(alert.consent().unwrap().code(), code);
    }
    let null = parse(&with(example(), "/consent", Value::Null)).unwrap();
    assert_eq!(null.consent(), None);
}

#[test]
fn a_consent_breaking_a_rule_names_the_field_and_the_rule() {
    let given = |at: &str| serde_json::json!({ "status": "given", "given_by": "person", "at": at });
    let cases = [
        (
            serde_json::json!("given"),
            "consent",
            "must be a JSON object",
        ),
        (serde_json::json!({}), "consent.status", "is required"),
        (
            serde_json::json!({ "status": "GIVEN" }),
            "consent.status",
            "must be `given` or `not_required`",
        ),
        (
            serde_json::json!({ "status": "given", "at": "2026-11-22T08:10:00+01:00" }),
            "consent.given_by",
            "is required",
        ),
        (
            serde_json::json!({ "status": "given", "given_by": "doctor",
                                "at": "2026-11-22T08:10:00+01:00" }),
            "consent.given_by",
            "must be `person`, `legal_representative` or `trusted_person`",
        ),
        (
            serde_json::json!({ "status": "given", "given_by": "person" }),
            "consent.at",
            "is required",
        ),
        (
            given("22/11/2026 08:10"),
            "consent.at",
            "must be an RFC 3339 date-time, e.g. 2026-11-22T08:15:00+01:00",
        ),
        (
            given("2026-11-22T08:10:00"),
            "consent.at",
            "must be an RFC 3339 date-time, e.g. 2026-11-22T08:15:00+01:00",
        ),
        (
            serde_json::json!({ "status": "not_required" }),
            "consent.basis",
            "is required",
        ),
        (
            serde_json::json!({ "status": "not_required", "basis": "convention" }),
            "consent.basis",
            "must be `vital_interest` or `legal_obligation`",
        ),
    ];
    for (consent, field, problem) in cases {
        let value = with(example(), "/consent", consent.clone());
        assert_eq!(
            field_error(&value),
            (field, problem.to_owned()),
            "{consent}"
        );
    }
}

#[test]
fn a_consent_dated_in_the_future_is_refused_beyond_the_clock_skew() {
    // Arrange: now() is 2026-12-06T05:00:00Z.
    let at = |instant: &str| {
        with(
            example(),
            "/consent",
            serde_json::json!({ "status": "given", "given_by": "person", "at": instant }),
        )
    };

    // Act
    let within_skew = parse(&at("2026-12-06T06:05:00+01:00"));
    let beyond_skew = parse(&at("2026-12-06T05:05:01Z"));

    // Assert
    assert!(within_skew.is_ok(), "{within_skew:?}");
    assert_eq!(
        beyond_skew.unwrap_err().to_string(),
        "field `consent.at` must not be in the future (more than 5 minutes ahead of relais's \
         clock)"
    );
}

#[test]
fn consent_errors_never_quote_the_values_given() {
    let sentinel = "PATIENT-SENTINEL-42";
    for consent in [
        serde_json::json!({ "status": sentinel }),
        serde_json::json!({ "status": "given", "given_by": sentinel, "at": "2026-11-22T08:10:00Z" }),
        serde_json::json!({ "status": "given", "given_by": "person", "at": sentinel }),
        serde_json::json!({ "status": "not_required", "basis": sentinel }),
        serde_json::json!(sentinel),
    ] {
        let error = parse(&with(example(), "/consent", consent))
            .unwrap_err()
            .to_string();
        assert!(!error.contains(sentinel), "{error}");
    }
}

#[test]
fn an_alert_with_a_consent_reads_back_from_its_contract_form() {
    let alert = parse(&example()).unwrap();

    let again = parse(&alert.to_json()).unwrap();

    assert_eq!(again, alert);
    assert_eq!(
        alert.to_json()["consent"],
        serde_json::json!({ "status": "given", "given_by": "person",
                            "at": "2026-11-22T08:10:00+01:00" })
    );
}

#[test]
fn the_consent_is_part_of_the_digest_and_its_absence_changes_nothing() {
    // Arrange
    let given = parse(&example()).unwrap();
    let by_representative = parse(&with(
        example(),
        "/consent/given_by",
        "legal_representative".into(),
    ))
    .unwrap();
    let later = parse(&with(
        example(),
        "/consent/at",
        "2026-11-22T08:11:00+01:00".into(),
    ))
    .unwrap();
    let not_required = parse(&with(
        example(),
        "/consent",
        serde_json::json!({ "status": "not_required", "basis": "vital_interest" }),
    ))
    .unwrap();

    // Act
    let digests = [
        given.digest(&KEY),
        by_representative.digest(&KEY),
        later.digest(&KEY),
        not_required.digest(&KEY),
    ];

    // Assert: four consents, four digests; the one of the example pinned.
    for (i, a) in digests.iter().enumerate() {
        for b in &digests[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_eq!(
        hex(given.digest(&KEY)),
        "7e2817c9a7a1354adfc8ba41784ebd90d3a5261ad5fcb171a19235813663b6c4"
    );
}
