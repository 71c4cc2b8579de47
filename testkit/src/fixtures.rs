//! What the tests share as data: the shipped geography, the tests'
//! registry, alert bodies of the contract, unique names, and the
//! acknowledgement key and deadlines every test uses. Nothing here talks
//! to a broker, a mail server or a store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a test waits for what relais should do: a deadline, never a
/// pause (each wait returns as soon as it is met).
pub const WAIT: Duration = Duration::from_secs(30);

/// How long a test waits for a stream of 1,000 alerts through a fault (a
/// node stopped, relais killed, PostgreSQL restarted) to be emailed.
pub const STREAM_WAIT: Duration = Duration::from_secs(120);

/// The key that signs acknowledgement links in the tests (never a real one).
pub const ACK_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";

/// The official geography shipped with relais, as the tests use it.
pub const TERRITORIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/territories.tsv");

/// The shipped geography, loaded once per test binary.
pub fn france() -> std::sync::Arc<relais::geography::Geography> {
    static FRANCE: std::sync::OnceLock<std::sync::Arc<relais::geography::Geography>> =
        std::sync::OnceLock::new();
    FRANCE
        .get_or_init(|| {
            std::sync::Arc::new(
                relais::geography::Geography::load(std::path::Path::new(TERRITORIES))
                    .expect("data/territories.tsv"),
            )
        })
        .clone()
}

/// The first 12 digits of the SHA-256 of a registry's text, as relais
/// names the registry in its logs, `/readyz`, metrics and audit.
pub fn registry_digest(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A registry with the three levels, two networks for one kind, and Corsica.
pub const REGISTRY: &str = r#"
[[route]]
kind = "orientation_sociale"
networks = ["ccas"]
label = "Orientation sociale"

[[route]]
kind = "acces_aux_droits"
networks = ["cpam", "caf"]
label = "Accès aux droits"

[[referent]]
id = "ccas-paris-13"
network = "ccas"
name = "Camille Martin"
organisation = "CCAS de Paris 13e"
email = "camille.martin@ccas-paris13.test"
communes = ["75113"]

[[referent]]
id = "ccas-paris-13-accueil"
network = "ccas"
email = "accueil@ccas-paris13.test"
communes = ["75113"]

[[referent]]
id = "ccas-paris"
network = "ccas"
email = "social@paris.test"
departements = ["75"]

[[referent]]
id = "ccas-ajaccio"
network = "ccas"
email = "ccas@ajaccio.test"
communes = ["2A004"]

[[referent]]
id = "cpam-75"
network = "cpam"
email = "referent@cpam-paris.test"
departements = ["75"]

[[referent]]
id = "caf-75"
network = "caf"
email = "referent@caf-paris.test"
departements = ["75"]
"#;

/// A name no other test (or run) uses.
/// The registry of the escalation tests: Camille of the CCAS of Paris 13e,
/// her deputy Dominique, and the permanence as the network's fallback;
/// `orientation_sociale` alerts escalate after `waits`, an
/// `escalate_after` table's content (`urgent = "3s", normal = "1h"`).
pub fn escalating(waits: &str) -> String {
    format!(
        r#"
[[route]]
kind = "orientation_sociale"
networks = ["ccas"]
label = "Orientation sociale"
escalate_after = {{ {waits} }}

[[referent]]
id = "camille"
network = "ccas"
name = "Camille Martin"
organisation = "CCAS de Paris 13e"
email = "camille@ccas-paris13.test"
communes = ["75113"]
deputies = ["dominique"]

[[referent]]
id = "dominique"
network = "ccas"
name = "Dominique Petit"
email = "dominique@ccas-paris13.test"
communes = ["75114"]

[[referent]]
id = "permanence"
network = "ccas"
organisation = "CCAS de Paris, permanence"
email = "permanence@paris.test"
fallback = true
"#
    )
}

pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test.{prefix}.{}.{n}.{nanos}", std::process::id())
}

/// A registry routing `orientation_sociale` to network `ccas`, whose
/// référents, given as (id, address), all serve commune 75113.
pub fn registry_of(referents: &[(String, String)]) -> String {
    let mut registry = String::from(
        "[[route]]\nkind = \"orientation_sociale\"\nnetworks = [\"ccas\"]\nlabel = \"Orientation sociale\"\n",
    );
    for (id, email) in referents {
        registry.push_str(&format!(
            "\n[[referent]]\nid = \"{id}\"\nnetwork = \"ccas\"\nemail = \"{email}\"\ncommunes = [\"75113\"]\n"
        ));
    }
    registry
}

/// An alert body of the contract, with a given id, kind and commune; the
/// person agreed to it (its `consent`, which relais requires by default).
pub fn alert(id: &str, kind: &str, commune: &str) -> Vec<u8> {
    serde_json::json!({
        "id": id,
        "kind": kind,
        "priority": "urgent",
        "emitted_at": "2026-11-22T08:15:00+01:00",
        "association": "SOS Médecins Paris",
        "territory": { "commune": commune },
        "summary": "Personne âgée isolée, sans aide à domicile, chute récente.",
        "patient": { "reference": "D-2026-4411", "name": "Mme Jeanne Durand" },
        "contact": { "name": "Dr Martin", "phone": "01 47 07 77 77" },
        "consent": { "status": "given", "given_by": "person", "at": "2026-11-22T08:10:00+01:00" }
    })
    .to_string()
    .into_bytes()
}

/// The `http…` link of the email line that contains `marker`.
pub fn link_in(text: &str, marker: &str) -> String {
    find_link(text, marker).unwrap_or_else(|| panic!("no {marker} link in:\n{text}"))
}

/// As [`link_in`], `None` when no line holds one.
pub fn find_link(text: &str, marker: &str) -> Option<String> {
    let line = text.lines().find(|line| line.contains(marker))?;
    Some(line[line.find("http")?..].trim().to_owned())
}
