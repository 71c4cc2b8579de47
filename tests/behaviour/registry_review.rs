//! Reviewing a registry change before it is live: `relais registry diff`
//! (the référents added, removed and changed, the routes, the communes
//! whose recipients change, its exit status and its JSON), `relais check`,
//! `resolve` and `coverage` with `--registry` on a candidate while the
//! settings name another registry, and the digest and version label that
//! say which file is meant. The real binary, on real communes of the Gers.

use relais_testkit as support;

use std::path::{Path, PathBuf};

use relais::registry::Registry;
use support::national_changes::National;
use support::{REGISTRY, World, france, text};

/// The registry in force: two CCAS of the Gers at commune level, a
/// national fallback, and the département's CPAM.
const OLD: &str = r#"version = "2026-12-01 UNCCAS"

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

/// `OLD` without the CCAS of Beccas, with one for Sarragachies, and the
/// CCAS of Marciac at a new address and telephone.
fn candidate() -> String {
    OLD.replace("2026-12-01 UNCCAS", "2026-12-06 UNCCAS")
        .replace(
            r#"id = "ccas-beccas"
network = "ccas"
email = "ccas@beccas.example.org"
communes = ["32039"]"#,
            r#"id = "ccas-sarragachies"
network = "ccas"
email = "ccas@sarragachies.example.org"
communes = ["32414"]"#,
        )
        .replace("ccas@marciac.example.org", "accueil@marciac.example.org")
        .replace("05 62 00 00 00", "05 62 11 11 11")
}

fn write(world: &World, name: &str, registry: &str) -> PathBuf {
    let path = world.dir.path().join(name);
    std::fs::write(&path, registry).unwrap();
    path
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `registry sha256:…` as relais shows the file `registry`.
fn digest(registry: &str) -> String {
    let registry = Registry::from_toml(registry, &france()).unwrap();
    registry.digest()[..12].to_owned()
}

#[tokio::test]
async fn a_registry_diff_says_each_referent_changed_by_id_and_each_commune_whose_recipients_change()
{
    let world = World::new(REGISTRY).await;
    let old = write(&world, "old.toml", OLD);
    let new = write(&world, "new.toml", &candidate());

    let diff = world.cli(&["registry", "diff", arg(&old), arg(&new)]);

    assert_eq!(diff.status.code(), Some(2), "{}", text(&diff.stderr));
    assert_eq!(
        text(&diff.stdout),
        format!(
            "old: {} (registry sha256:{}, version \"2026-12-01 UNCCAS\")\n\
             new: {} (registry sha256:{}, version \"2026-12-06 UNCCAS\")\n\
             removed référent ccas-beccas (network ccas)\n\
             changed référent ccas-marciac: email ccas@marciac.example.org → \
             accueil@marciac.example.org; phone 05 62 00 00 00 → 05 62 11 11 11\n\
             added référent ccas-sarragachies (network ccas)\n\
             ccas orientation_sociale: Beccas (32039, 122 inhabitants): ccas-beccas (commune) → \
             ccas-national (fallback)\n\
             ccas orientation_sociale: Sarragachies (32414, 217 inhabitants): ccas-national \
             (fallback) → ccas-sarragachies (commune)\n\
             1 référents added, 1 removed, 1 changed; 2 communes (339 inhabitants) change \
             recipients\n",
            old.display(),
            digest(OLD),
            new.display(),
            digest(&candidate()),
        )
    );
    assert!(diff.stderr.is_empty(), "{}", text(&diff.stderr));
    world.cleanup().await;
}

#[tokio::test]
async fn a_route_and_a_publisher_changed_are_said_and_twenty_communes_listed_unless_all() {
    let world = World::new(REGISTRY).await;
    let old = write(&world, "old.toml", OLD);
    let routed = OLD.replace(r#"networks = ["ccas"]"#, r#"networks = ["ccas", "cpam"]"#)
        + r#"
[[publisher]]
user = "sos32-dispatch"
association = "SOS Médecins Gers"
departements = ["32"]
"#;
    let new = write(&world, "new.toml", &routed);
    let gers: Vec<u32> = france()
        .units()
        .filter(|unit| unit.commune.departement().as_str() == "32")
        .map(|unit| unit.population)
        .collect();
    let rest: u64 = gers[20..].iter().map(|&p| u64::from(p)).sum();
    let all: u64 = gers.iter().map(|&p| u64::from(p)).sum();

    let diff = world.cli(&["registry", "diff", arg(&old), arg(&new)]);
    let every = world.cli(&["registry", "diff", "--all", arg(&old), arg(&new)]);

    assert_eq!(diff.status.code(), Some(2), "{}", text(&diff.stderr));
    let out = text(&diff.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[2],
        "changed route orientation_sociale: networks ccas → ccas, cpam"
    );
    assert_eq!(
        lines[3],
        "added publisher sos32-dispatch: association SOS Médecins Gers; territories \
         departements 32; kinds all; author none; contact none"
    );
    assert_eq!(
        lines[4],
        "cpam orientation_sociale: Aignan (32001, 720 inhabitants): nobody → cpam-gers (departement)"
    );
    assert_eq!(
        lines[24],
        format!(
            "cpam orientation_sociale: … and {} more communes ({rest} inhabitants)",
            gers.len() - 20
        )
    );
    assert_eq!(
        lines[25..],
        [format!(
            "0 référents added, 0 removed, 0 changed; {} communes ({all} inhabitants) change \
             recipients",
            gers.len()
        )]
    );
    let every = text(&every.stdout);
    let listed = every
        .lines()
        .filter(|l| l.starts_with("cpam orientation_sociale: "))
        .count();
    assert_eq!(listed, gers.len());
    assert!(!every.contains("more communes"), "{every}");
    world.cleanup().await;
}

#[tokio::test]
async fn identical_registries_exit_0_with_no_change() {
    let world = World::new(REGISTRY).await;
    let old = write(&world, "old.toml", OLD);
    let copy = write(&world, "copy.toml", OLD);

    let diff = world.cli(&["registry", "diff", arg(&old), arg(&copy)]);

    assert_eq!(diff.status.code(), Some(0), "{}", text(&diff.stderr));
    let out = text(&diff.stdout);
    let lines: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(
        lines,
        [
            "no change",
            "0 référents added, 0 removed, 0 changed; 0 communes (0 inhabitants) change recipients"
        ]
    );
    world.cleanup().await;
}

#[tokio::test]
async fn an_invalid_candidate_exits_1_with_every_error_listed_and_no_report() {
    let world = World::new(REGISTRY).await;
    let old = write(&world, "old.toml", OLD);
    let broken = candidate()
        .replace("accueil@marciac.example.org", "accueil at marciac")
        .replace(r#"communes = ["32414"]"#, r#"communes = ["32999"]"#)
        .replace("2026-12-06 UNCCAS", "2026-12-06\tUNCCAS");
    let new = write(&world, "new.toml", &broken);
    let old_broken = write(
        &world,
        "old-broken.toml",
        &OLD.replace(r#"departements = ["32"]"#, r#"departements = ["32", "20"]"#),
    );

    let diff = world.cli(&["registry", "diff", arg(&old), arg(&new)]);
    let both = world.cli(&["registry", "diff", arg(&old_broken), arg(&new)]);

    assert_eq!(diff.status.code(), Some(1));
    assert!(diff.stdout.is_empty(), "{}", text(&diff.stdout));
    assert_eq!(
        text(&diff.stderr),
        format!(
            "relais: the registry {} has 3 error(s):\n  \
             - `version` must be one line of 1 to 64 printable characters (e.g. \"2026-12-06 UNCCAS\")\n  \
             - referent #1 (\"ccas-sarragachies\"): commune \"32999\" is not a commune code of the official geography (millésime 2026)\n  \
             - referent #2 (\"ccas-marciac\"): email \"accueil at marciac\" is not a valid address: Missing domain or user\n",
            new.display()
        )
    );
    assert_eq!(both.status.code(), Some(1));
    let both = text(&both.stderr);
    assert!(
        both.starts_with(&format!(
            "relais: the registry {} has 1 error(s):\n  - referent #4 (\"cpam-gers\"): \
             département \"20\"",
            old_broken.display()
        )) && both.ends_with(&text(&diff.stderr)),
        "{both}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn check_resolve_and_coverage_read_a_candidate_with_registry_while_the_settings_name_another()
{
    let world = World::new(REGISTRY).await;
    let candidate = write(&world, "candidate.toml", OLD);

    let checked = world.cli(&["check", "--registry", arg(&candidate)]);
    let in_force = world.cli(&["check"]);
    let resolved = world.cli(&[
        "resolve",
        "--registry",
        arg(&candidate),
        "--kind",
        "orientation_sociale",
        "--commune",
        "32039",
    ]);
    let resolved_in_force = world.cli(&[
        "resolve",
        "--kind",
        "orientation_sociale",
        "--commune",
        "32039",
    ]);
    let covered = world.cli(&["coverage", "--registry", arg(&candidate), "--json"]);

    assert!(checked.status.success(), "{}", text(&checked.stderr));
    let checked = text(&checked.stdout);
    assert!(
        checked.contains(&format!(
            "registry: {} — 4 référent(s) in 2 network(s), 0 publisher(s)\n          \
             registry sha256:{}, version \"2026-12-01 UNCCAS\"\n",
            candidate.display(),
            digest(OLD)
        )),
        "{checked}"
    );
    let in_force = text(&in_force.stdout);
    assert!(
        in_force.contains(&format!(
            "registry: {} — ",
            world.dir.path().join("referents.toml").display()
        )) && in_force.contains(&format!(
            "          registry sha256:{}, no version label\n",
            digest(REGISTRY)
        )),
        "{in_force}"
    );
    assert_eq!(
        text(&resolved.stdout),
        "ccas-beccas ccas@beccas.example.org\n"
    );
    assert_eq!(resolved_in_force.status.code(), Some(1));
    assert!(covered.status.success(), "{}", text(&covered.stderr));
    let covered: serde_json::Value = serde_json::from_slice(&covered.stdout).unwrap();
    let networks: Vec<&str> = covered["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["network"].as_str().unwrap())
        .collect();
    assert_eq!(networks, ["ccas", "cpam"]);
    assert_eq!(
        covered["networks"][1]["levels"]["departement"]["communes"],
        458
    );
    world.cleanup().await;
}

#[tokio::test]
async fn the_json_report_gives_a_review_pipeline_every_change_and_the_full_digests() {
    let world = World::new(REGISTRY).await;
    let old = write(&world, "old.toml", OLD);
    let new = write(&world, "new.toml", &candidate());
    let full = |registry: &str| {
        Registry::from_toml(registry, &france())
            .unwrap()
            .digest()
            .to_owned()
    };

    let diff = world.cli(&["registry", "diff", "--json", arg(&old), arg(&new)]);

    assert_eq!(diff.status.code(), Some(2), "{}", text(&diff.stderr));
    let report: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({
            "old": { "path": old, "digest": full(OLD), "version": "2026-12-01 UNCCAS" },
            "new": { "path": new, "digest": full(&candidate()), "version": "2026-12-06 UNCCAS" },
            "referents": {
                "added": [{ "id": "ccas-sarragachies", "network": "ccas" }],
                "removed": [{ "id": "ccas-beccas", "network": "ccas" }],
                "changed": [{
                    "id": "ccas-marciac",
                    "fields": [
                        { "field": "email", "old": "ccas@marciac.example.org", "new": "accueil@marciac.example.org" },
                        { "field": "phone", "old": "05 62 00 00 00", "new": "05 62 11 11 11" },
                    ],
                }],
            },
            "routes": [],
            "publishers": [],
            "recipients": [{
                "network": "ccas",
                "kind": "orientation_sociale",
                "communes": [
                    {
                        "code": "32039", "name": "Beccas", "population": 122,
                        "old": { "level": "commune", "referents": ["ccas-beccas"] },
                        "new": { "level": "fallback", "referents": ["ccas-national"] },
                    },
                    {
                        "code": "32414", "name": "Sarragachies", "population": 217,
                        "old": { "level": "fallback", "referents": ["ccas-national"] },
                        "new": { "level": "commune", "referents": ["ccas-sarragachies"] },
                    },
                ],
            }],
            "summary": {
                "changed": true,
                "referents_added": 1,
                "referents_removed": 1,
                "referents_changed": 1,
                "communes": 2,
                "population": 339,
            },
        })
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_national_registry_with_500_changes_is_compared_whole() {
    let world = World::new(REGISTRY).await;
    let national = National::of(&france());
    let (changed, changes) = national.with_changes(500);
    let old = write(&world, "old.toml", &national.to_toml());
    let new = write(&world, "new.toml", &changed.to_toml());
    let population: u64 = france()
        .units()
        .filter(|unit| changes.communes.contains(&unit.commune.to_string()))
        .map(|unit| u64::from(unit.population))
        .sum();

    let diff = world.cli(&["registry", "diff", arg(&old), arg(&new)]);

    assert_eq!(diff.status.code(), Some(2), "{}", text(&diff.stderr));
    assert_eq!(
        (changes.added, changes.removed, changes.changed),
        (100, 100, 300)
    );
    assert_eq!(
        text(&diff.stdout).lines().last(),
        Some(
            format!(
                "100 référents added, 100 removed, 300 changed; {} communes ({population} \
                 inhabitants) change recipients",
                changes.communes.len()
            )
            .as_str()
        )
    );
    world.cleanup().await;
}
