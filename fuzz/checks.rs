//! What the fuzz targets check on each input. `core/tests/fuzz_seeds.rs`
//! runs the same checks on every committed seed, so that an input a fuzzer
//! once crashed on, saved in `fuzz/seeds/<target>/`, stays a test on stable;
//! `tests/behaviour/contract.rs` runs them on generated alerts.
#![allow(dead_code, reason = "each fuzz target calls one of the checks")]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use relais_core::alert::{Alert, Kind};
use relais_core::bounce::{Bounce, Status};
use relais_core::geography::Geography;
use relais_core::registry::Registry;

/// The official geography shipped with relais (`data/territories.tsv`),
/// found from the crate that includes these checks (the root, `core/` or
/// `fuzz/`).
fn france() -> &'static Arc<Geography> {
    static FRANCE: OnceLock<Arc<Geography>> = OnceLock::new();
    FRANCE.get_or_init(|| {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = [crate_dir.join("data"), crate_dir.join("../data")]
            .into_iter()
            .map(|dir| dir.join("territories.tsv"))
            .find(|path| path.exists())
            .expect("data/territories.tsv");
        Arc::new(Geography::load(&path).expect("the shipped geography"))
    })
}

/// Any bytes as an alert body: refused or accepted, never a panic; an
/// accepted alert holds no control character in a one-line value (nor in
/// its summary, but line breaks and tabs, nor in the short form of its
/// consent that the audit trail keeps) and parses back from its contract
/// form to the same alert.
pub fn alert(body: &[u8]) {
    let Ok(alert) = Alert::parse(body, 65_536, france()) else {
        return;
    };
    let patient = alert.patient();
    let contact = alert.contact();
    let optional = [
        &patient.reference,
        &patient.name,
        &patient.address,
        &patient.phone,
        &contact.name,
        &contact.phone,
    ];
    let consent = alert.consent().map(|consent| consent.code());
    let one_line = [
        alert.id().as_str(),
        alert.kind().as_str(),
        alert.association(),
    ]
    .into_iter()
    .chain(optional.into_iter().flatten().map(String::as_str))
    .chain(consent.as_deref());
    for value in one_line {
        assert!(!value.chars().any(char::is_control), "{value:?}");
        assert!(!value.trim().is_empty());
    }
    let summary = alert.summary();
    assert!(
        !summary
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{summary:?}"
    );
    let again = Alert::parse(alert.to_json().to_string().as_bytes(), 65_536, france());
    assert_eq!(again, Ok(alert));
}

/// Any text as a registry (first byte even: TOML, odd: JSON): a registry
/// or the list of its errors, never a panic; a valid one resolves
/// territories without one either.
pub fn registry(data: &[u8]) {
    let Some((&format, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let loaded = if format % 2 == 0 {
        Registry::from_toml(text, france())
    } else {
        Registry::from_json(text, france())
    };
    let Ok(registry) = loaded else {
        return;
    };
    let _ = registry.summary();
    let kind = Kind::parse("orientation_sociale").unwrap();
    for commune in ["75113", "2A004", "97411", "13055", "01039", "20004"] {
        let territory = france().territory(Some(commune), None).unwrap();
        let _ = registry.resolve(&kind, territory);
    }
    let _ = registry.resolve(&kind, france().territory(None, Some("2B")).unwrap());
}

/// Any bytes as a bounce message: a report, an unstructured bounce or a
/// refusal, never a panic; a report names at least one recipient, each
/// with an address type and an address, and its statuses print as codes
/// that read back the same.
pub fn dsn(raw: &[u8]) {
    match Bounce::parse(raw) {
        Ok(Bounce::Report(report)) => {
            assert!(!report.recipients.is_empty());
            for recipient in &report.recipients {
                let address = &recipient.final_recipient;
                assert!(!address.address_type.is_empty() && !address.address.is_empty());
                let status = recipient.status;
                assert_eq!(Status::parse(&status.to_string()), Some(status));
            }
        }
        Ok(Bounce::Unstructured { status }) => {
            if let Some(status) = status {
                assert_eq!(Status::parse(&status.to_string()), Some(status));
            }
        }
        Err(_) => {}
    }
}
