//! The fuzz targets' checks on every committed seed (`fuzz/seeds/`): the
//! examples they start from, and any input a fuzzer once crashed on,
//! which is saved there as a regression test on stable.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn every_alert_seed_passes_the_fuzz_checks() {
    let seeds = seeds("alert");
    assert!(seeds.len() >= 3, "{seeds:?}");
    for (name, body) in seeds {
        eprintln!("{name}");
        checks::alert(&body);
    }
}

#[test]
fn every_registry_seed_passes_the_fuzz_checks() {
    let seeds = seeds("registry");
    assert!(seeds.len() >= 2);
    for (name, data) in seeds {
        eprintln!("{name}");
        checks::registry(&data);
    }
}

#[test]
fn every_bounce_seed_passes_the_fuzz_checks() {
    let seeds = seeds("dsn");
    assert!(seeds.len() >= 4, "{seeds:?}");
    for (name, raw) in seeds {
        eprintln!("{name}");
        checks::dsn(&raw);
    }
}
