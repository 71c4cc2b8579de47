//! What the fuzz targets check on each input. `core/tests/fuzz_seeds.rs`
//! runs the same checks on every committed seed, so that an input a fuzzer
//! once crashed on, saved in `fuzz/seeds/<target>/`, stays a test on stable;
//! `tests/properties.rs` runs them on generated alerts.
#![allow(dead_code, reason = "each fuzz target calls one of the checks")]

use relais_core::alert::{Alert, Kind};
use relais_core::registry::Registry;
use relais_core::territory::{Commune, Departement, Territory};

/// Any bytes as an alert body: refused or accepted, never a panic; an
/// accepted alert holds no control character in a one-line value (nor in
/// its summary, but line breaks and tabs) and parses back from its
/// contract form to the same alert.
pub fn alert(body: &[u8]) {
    let Ok(alert) = Alert::parse(body, 65_536) else {
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
    let one_line = [
        alert.id().as_str(),
        alert.kind().as_str(),
        alert.association(),
    ]
    .into_iter()
    .chain(optional.into_iter().flatten().map(String::as_str));
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
    let again = Alert::parse(alert.to_json().to_string().as_bytes(), 65_536);
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
        Registry::from_toml(text)
    } else {
        Registry::from_json(text)
    };
    let Ok(registry) = loaded else {
        return;
    };
    let _ = registry.summary();
    let kind = Kind::parse("orientation_sociale").unwrap();
    for commune in ["75113", "2A004", "97411", "13055"] {
        let territory = Territory::new(Some(Commune::parse(commune).unwrap()), None).unwrap();
        let _ = registry.resolve(&kind, territory);
    }
    let departement = Departement::parse("2B").unwrap();
    let _ = registry.resolve(&kind, Territory::new(None, Some(departement)).unwrap());
}
