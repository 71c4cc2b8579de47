//! relais's settings as an operator writes them, read by the real binary:
//! `relais check` summarises a valid setup and lists every error of a
//! broken registry, never prints a secret whether the settings are valid
//! or not, takes the secrets from systemd's credentials and warns when
//! others can read them, shows the EHLO name and the SMTP time limits and
//! refuses a bad EHLO name; `relais run` reports at start a secret file
//! other users can read.

use relais_testkit as support;

use std::process::Command;

use support::{Logs, REGISTRY, WAIT, World, signal, text, wait_exit};

#[tokio::test]
async fn check_summarises_a_valid_setup_and_lists_every_error_of_a_broken_registry() {
    let world = World::new(REGISTRY).await;

    let ok = world.cli(&["check"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let out = text(&ok.stdout);
    assert!(out.starts_with("settings: valid\n"), "{out}");
    assert!(
        out.contains("amqp://guest:***@127.0.0.1:5672/%2f"),
        "the password is redacted: {out}"
    );
    assert!(out.contains("6 référent(s) in 3 network(s)"), "{out}");
    assert!(
        out.contains("  acces_aux_droits         → cpam, caf\n"),
        "{out}"
    );

    std::fs::write(
        world.dir.path().join("referents.toml"),
        "[[route]]\nkind = \"orientation_sociale\"\nnetworks = [\"ccas\"]\n[[referent]]\nid = \"a\"\nnetwork = \"ccas\"\nemail = \"nope\"\ncommunes = [\"7511\"]\n[[referent]]\nid = \"b\"\nnetwork = \"ccas\"\nemail = \"b@x.test\"\ncommunes = [\"2C004\"]\n",
    )
    .unwrap();
    let broken = world.cli(&["check"]);
    assert_eq!(broken.status.code(), Some(1));
    let err = text(&broken.stderr);
    assert!(err.contains("has 2 error(s)"), "{err}");
    assert!(
        err.contains(r#"referent #1 ("a"): email "nope" is not a valid address"#),
        "{err}"
    );
    assert!(
        err.contains(r#"referent #2 ("b"): commune "2C004" is not an INSEE commune code"#),
        "{err}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn check_never_prints_a_secret_whether_the_settings_are_valid_or_not() {
    let amqp_secret = "AMQP-SECRET-5d1";
    let smtp_secret = "SMTP-SECRET-9c2";
    let url = format!("amqp://guest:{amqp_secret}@127.0.0.1:5672/%2f");
    let mut world = World::with_env(
        REGISTRY,
        &[
            ("RELAIS__AMQP__URL", url.as_str()),
            ("RELAIS__SMTP__USERNAME", "relais-sos75"),
            ("RELAIS__SMTP__PASSWORD", smtp_secret),
            ("RELAIS__SMTP__TLS", "required"),
        ],
    )
    .await;

    let valid = world.cli(&["check"]);
    // Then a setting that is wrong, next to the secrets.
    world
        .env
        .push(("RELAIS__SMTP__TLS".into(), "sometimes".into()));
    let invalid = world.cli(&["check"]);
    world.env.pop();

    assert!(valid.status.success(), "{}", text(&valid.stderr));
    assert!(text(&valid.stdout).contains("amqp://guest:***@127.0.0.1:5672/%2f"));
    assert_eq!(invalid.status.code(), Some(1));
    assert!(
        text(&invalid.stderr).contains("smtp.tls"),
        "{}",
        text(&invalid.stderr)
    );
    for output in [&valid, &invalid] {
        let shown = text(&output.stdout) + &text(&output.stderr);
        assert!(!shown.contains(amqp_secret), "{shown}");
        assert!(!shown.contains(smtp_secret), "{shown}");
    }
    world.cleanup().await;
}

#[tokio::test]
async fn check_takes_the_secrets_from_systemd_credentials_and_warns_when_others_can_read_them() {
    use std::os::unix::fs::PermissionsExt as _;
    let amqp_secret = "CRED-AMQP-7e4";
    let smtp_secret = "CRED-SMTP-0b8";
    let credentials = tempfile::tempdir().unwrap();
    let dir = credentials.path();
    let write = |name: &str, text: &str, mode: u32| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let url = format!("amqps://relais:{amqp_secret}@broker.example.org:5671/%2f\n");
    write("amqp-url", &url, 0o600);
    let password = write("smtp-password", smtp_secret, 0o644);
    let world = World::with_env(
        REGISTRY,
        &[
            ("CREDENTIALS_DIRECTORY", dir.to_str().unwrap()),
            ("RELAIS__SMTP__USERNAME", "relais-sos75"),
            ("RELAIS__SMTP__TLS", "required"),
        ],
    )
    .await;

    let exposed = world.cli(&["check"]);
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let private = world.cli(&["check"]);

    assert!(exposed.status.success(), "{}", text(&exposed.stderr));
    let out = text(&exposed.stdout);
    assert!(
        out.contains("broker:   amqps://relais:***@broker.example.org:5671/%2f"),
        "the URL comes from the credential: {out}"
    );
    let warnings = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("warning:"))
            .map(str::to_owned)
            .collect()
    };
    let no_publisher = format!("warning:  {}", relais::commands::NO_PUBLISHER);
    assert_eq!(
        warnings(&out),
        [
            format!(
                "warning:  smtp.password_file {} can be read by other users (mode 0644): \
                 `chmod 600` it, owned by the user relais runs as",
                password.display()
            ),
            no_publisher.clone()
        ]
    );
    assert!(private.status.success(), "{}", text(&private.stderr));
    assert_eq!(warnings(&text(&private.stdout)), [no_publisher]);
    for output in [&exposed, &private] {
        let shown = text(&output.stdout) + &text(&output.stderr);
        assert!(!shown.contains(amqp_secret), "{shown}");
        assert!(!shown.contains(smtp_secret), "{shown}");
    }
    world.cleanup().await;
}

#[tokio::test]
async fn check_shows_the_ehlo_name_and_the_smtp_time_limits_and_refuses_a_bad_ehlo_name() {
    let world = World::with_env(
        REGISTRY,
        &[
            ("RELAIS__SMTP__HELO_NAME", "relais.sos-medecins.test"),
            ("RELAIS__SMTP__TIMEOUT", "30s"),
        ],
    )
    .await;

    let ok = world.cli(&["check"]);
    let out = text(&ok.stdout);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        out.contains("\n          EHLO relais.sos-medecins.test (smtp.helo_name)\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "\n          timeouts: 30s per step, 2s for the reply to the end of a message\n"
        ),
        "{out}"
    );

    let mut bad = world.env.clone();
    bad.retain(|(key, _)| key != "RELAIS__SMTP__HELO_NAME");
    bad.push(("RELAIS__SMTP__HELO_NAME".into(), "relais".into()));
    let refused = Command::new(env!("CARGO_BIN_EXE_relais"))
        .arg("--config")
        .arg(&world.config)
        .arg("check")
        .envs(bad.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let err = text(&refused.stderr);
    assert!(
        err.contains(
            "smtp.helo_name \"relais\" must be a fully qualified domain name (e.g. \
             relais.example.org) or an address literal (e.g. [192.0.2.1])"
        ),
        "{err}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_secret_file_other_users_can_read_is_reported_when_relais_starts() {
    use std::os::unix::fs::PermissionsExt as _;
    let secrets = tempfile::tempdir().unwrap();
    let password = secrets.path().join("smtp-password");
    std::fs::write(&password, "PASSWORD-9d3").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o640)).unwrap();
    let world = World::with_env(
        REGISTRY,
        &[
            ("RELAIS__SMTP__USERNAME", "relais-sos75"),
            ("RELAIS__SMTP__PASSWORD_FILE", password.to_str().unwrap()),
            ("RELAIS__SMTP__TLS", "required"),
        ],
    )
    .await;
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);

    logs.expect("consuming alerts").await;
    signal(&relais, "TERM");
    wait_exit(&mut relais, WAIT).await;

    let warnings: Vec<String> = logs
        .all()
        .lines()
        .filter(|line| line.contains("the settings need attention"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", logs.all());
    assert!(warnings[0].contains(" WARN "), "{}", warnings[0]);
    assert!(
        warnings[0].contains(&format!(
            "smtp.password_file {} can be read by other users (mode 0640)",
            password.display()
        )),
        "{}",
        warnings[0]
    );
    assert!(!logs.all().contains("PASSWORD-9d3"));
    world.cleanup().await;
}

#[tokio::test]
async fn settings_without_a_territories_section_run_on_the_geography_built_into_the_binary() {
    // Arrange: settings as written before the geography was built in, and
    // as the smallest example has them: no [territories] at all.
    let world = World::new(REGISTRY).await;
    let settings = std::fs::read_to_string(&world.config).unwrap();
    let without: String = settings
        .split("\n\n")
        .filter(|section| !section.trim_start().starts_with("[territories]"))
        .collect::<Vec<_>>()
        .join("\n\n");
    assert!(!without.contains("territories"), "{without}");
    std::fs::write(&world.config, without).unwrap();

    // Act
    let check = world.cli(&["check"]);
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    logs.expect("consuming alerts").await;
    world
        .publish(
            "orientation_sociale",
            &support::alert("SOS75-BUILT-IN", "orientation_sociale", "75113"),
        )
        .await;
    let mails = world.smtp.wait_for(2, WAIT).await;
    signal(&relais, "TERM");
    let exit = wait_exit(&mut relais, WAIT).await;

    // Assert: the built-in millésime is named, and routes the alert.
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains(
            "territories: built in, millésime 2026 (@etalab/decoupage-administratif@6.0.0)\n"
        ),
        "{}",
        text(&check.stdout)
    );
    let mut referents: Vec<String> = mails.iter().map(|mail| mail.referent()).collect();
    referents.sort();
    assert_eq!(referents, ["ccas-paris-13", "ccas-paris-13-accueil"]);
    assert!(exit.success(), "{}", logs.all());
    assert!(
        logs.all().contains("built in, millésime 2026"),
        "the start-up log names the geography: {}",
        logs.all()
    );
    world.cleanup().await;
}
