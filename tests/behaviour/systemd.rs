//! The systemd unit: hardened to the target exposure score, and valid.
//! (Its runtime behaviour, READY and the watchdog, needs a running systemd;
//! `relais::daemon::run` sends them through sd-notify, a no-op elsewhere.)

use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/relais.service");

#[test]
fn the_unit_scores_1_5_or_lower_in_systemds_security_review() {
    let review = Command::new("systemd-analyze")
        .args(["security", "--offline=true", UNIT])
        .output()
        .expect("systemd-analyze (package systemd)");
    let text = String::from_utf8_lossy(&review.stdout);
    let score: f64 = text
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for relais.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no overall score in:\n{text}"));
    assert!(score <= 1.5, "exposure {score} > 1.5:\n{text}");
}

#[test]
fn the_unit_verifies_with_the_built_binary_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(UNIT).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/relais --config /etc/relais/relais.toml run"));
    for required in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=relais",
        "LoadCredential=amqp-url:",
        "LoadCredential=smtp-password:",
    ] {
        assert!(unit.contains(required), "the unit lacks {required}");
    }
    // relais finds each credential the unit loads, by name.
    for line in unit.lines() {
        if let Some(rest) = line
            .trim_start_matches("# ")
            .strip_prefix("LoadCredential=")
        {
            let name = rest.split(':').next().unwrap();
            assert!(
                relais::settings::CREDENTIALS.contains(&name),
                "relais does not read the credential {name}"
            );
        }
    }
    let here = unit.replace("/usr/bin/relais", env!("CARGO_BIN_EXE_relais"));
    let path = dir.path().join("relais.service");
    std::fs::write(&path, here).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "{complaints}"
    );
}

#[test]
fn the_production_settings_example_is_valid_once_its_credentials_exist() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(
        credentials.join("amqp-url"),
        "amqps://relais:s3cr3t@broker.example.org:5671/%2f\n",
    )
    .unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/relais.toml")).unwrap();
    let example = example
        .replace("/etc/relais/credentials", credentials.to_str().unwrap())
        .replace(
            "/etc/relais/referents.toml",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/referents.toml"),
        )
        .replace(
            "/usr/share/relais/territories.tsv",
            concat!(env!("CARGO_MANIFEST_DIR"), "/data/territories.tsv"),
        );
    let path = dir.path().join("relais.toml");
    std::fs::write(&path, example).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        out.contains("amqps://relais:***@broker.example.org:5671/%2f"),
        "{out}"
    );
    assert!(!out.contains("s3cr3t"));
    assert!(
        out.contains("SMTP smtp.example.org:587 (tls Required)"),
        "{out}"
    );
}
