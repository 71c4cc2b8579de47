//! The operators' commands, run as the real binary: check, resolve,
//! publish, audit.

use relais_testkit as support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use support::{REGISTRY, World, alert, unique};

fn relais(world: &World, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relais"))
        .arg("--config")
        .arg(&world.config)
        .args(args)
        .envs(world.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(stdin) = stdin {
        input.write_all(stdin).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn check_summarises_a_valid_setup_and_lists_every_error_of_a_broken_registry() {
    let world = World::new(REGISTRY).await;

    let ok = relais(&world, &["check"], None);
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
    let broken = relais(&world, &["check"], None);
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
async fn resolve_prints_one_line_per_referent_or_why_nobody() {
    let world = World::new(REGISTRY).await;

    let found = relais(
        &world,
        &[
            "resolve",
            "--kind",
            "orientation_sociale",
            "--commune",
            "75113",
        ],
        None,
    );
    assert!(found.status.success(), "{}", text(&found.stderr));
    assert_eq!(
        text(&found.stdout),
        "ccas-paris-13 camille.martin@ccas-paris13.test\nccas-paris-13-accueil accueil@ccas-paris13.test\n"
    );
    assert_eq!(
        text(&found.stderr),
        "# Paris 13e Arrondissement (75113)\n# network ccas: 2 référent(s) at the arrondissement level\n"
    );

    let departement = relais(
        &world,
        &[
            "resolve",
            "--kind",
            "acces_aux_droits",
            "--departement",
            "75",
        ],
        None,
    );
    assert_eq!(
        text(&departement.stdout),
        "cpam-75 referent@cpam-paris.test\ncaf-75 referent@caf-paris.test\n"
    );

    let nobody = relais(
        &world,
        &[
            "resolve",
            "--kind",
            "orientation_sociale",
            "--commune",
            "69123",
        ],
        None,
    );
    assert_eq!(nobody.status.code(), Some(1));
    assert!(nobody.stdout.is_empty());
    assert!(
        text(&nobody.stderr).contains(
            "no référent of network(s) ccas for commune 69123 (département 69), and no fallback"
        ),
        "{}",
        text(&nobody.stderr)
    );

    let bad = relais(
        &world,
        &[
            "resolve",
            "--kind",
            "orientation_sociale",
            "--commune",
            "2C004",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("--commune is not an INSEE commune code"),
        "{}",
        text(&bad.stderr)
    );
    world.cleanup().await;
}

#[tokio::test]
async fn publish_sends_a_valid_alert_persistently_and_refuses_an_invalid_one() {
    let world = World::new(REGISTRY).await;
    let body = alert("SOS75-PUB", "orientation_sociale", "75113");

    let refused = relais(
        &world,
        &["publish"],
        Some(br#"{"id": "x", "kind": "orientation_sociale"}"#),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr)
            .contains("not published: the alert is invalid: field `emitted_at` is required")
    );
    assert_eq!(
        world.broker.depth(&world.queue).await,
        0,
        "nothing published"
    );

    let file = world.dir.path().join("alert.json");
    std::fs::write(&file, &body).unwrap();
    let sent = relais(&world, &["publish", "--file", file.to_str().unwrap()], None);
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert!(
        text(&sent.stdout)
            .contains("published alert SOS75-PUB (kind orientation_sociale, commune 75113)")
    );
    assert!(text(&sent.stdout).contains("confirmed by the broker"));

    // The main queue has a single active consumer, which excludes basic.get.
    let delivery = world.broker.consume_one(&world.queue).await;
    assert_eq!(delivery.data, body);
    assert_eq!(delivery.routing_key.as_str(), "orientation_sociale");
    let properties = &delivery.properties;
    assert_eq!(properties.delivery_mode(), &Some(2));
    assert_eq!(
        properties.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.as_str()),
        Some("SOS75-PUB")
    );
    assert_eq!(
        properties.user_id().as_ref().map(|u| u.as_str()),
        Some("guest"),
        "the login of the URL, which the broker vouches for"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn publish_reports_an_exchange_where_nothing_would_receive_the_alert() {
    let mut world = World::new(REGISTRY).await;
    let body = alert("SOS75-LOST", "orientation_sociale", "75113");

    // An exchange that does not exist.
    world
        .env
        .push(("RELAIS__AMQP__EXCHANGE".into(), unique("missing")));
    let missing = relais(&world, &["publish"], Some(&body));
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("does not exist on the broker"),
        "{}",
        text(&missing.stderr)
    );

    // An exchange with no queue bound: the broker would drop the alert.
    let unbound = unique("unbound");
    world
        .broker
        .channel
        .exchange_declare(
            unbound.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    world
        .env
        .push(("RELAIS__AMQP__EXCHANGE".into(), unbound.clone()));
    let dropped = relais(&world, &["publish"], Some(&body));
    assert_eq!(dropped.status.code(), Some(1));
    assert!(
        text(&dropped.stderr).contains("no queue is bound to exchange"),
        "{}",
        text(&dropped.stderr)
    );
    let _ = world
        .broker
        .channel
        .exchange_delete(
            unbound.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
    world.env.clear();
    world.cleanup().await;
}

#[tokio::test]
async fn audit_lists_who_was_emailed_about_an_alert_and_the_days_deliveries() {
    let world = World::new(REGISTRY).await;
    let app = world.spawn();
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-AUD", "orientation_sociale", "75113"),
        )
        .await;
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-AUD2", "orientation_sociale", "75115"),
        )
        .await;
    world.smtp.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(
        world
            .wait_for_depth(&world.queue, 0, Duration::from_secs(20))
            .await,
        0
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;

    let one = relais(&world, &["audit", "--alert", "SOS75-AUD"], None);
    assert!(one.status.success(), "{}", text(&one.stderr));
    let lines: Vec<Vec<String>> = text(&one.stdout)
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect();
    assert_eq!(lines.len(), 2);
    let mut who: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| (l[1].as_str(), l[2].as_str(), l[3].as_str()))
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            (
                "SOS75-AUD",
                "ccas-paris-13",
                "camille.martin@ccas-paris13.test"
            ),
            (
                "SOS75-AUD",
                "ccas-paris-13-accueil",
                "accueil@ccas-paris13.test"
            ),
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l[0].starts_with("20") && l[4].starts_with("<relais.SOS75-AUD."))
    );

    let day = relais(&world, &["audit", "--since", "24h"], None);
    assert_eq!(text(&day.stdout).lines().count(), 3);
    let output = format!("{}{}", text(&one.stdout), text(&day.stdout));
    assert!(
        !output.contains("Jeanne Durand"),
        "no patient data in the audit"
    );

    let none = relais(&world, &["audit", "--alert", "NEVER-SEEN"], None);
    assert!(none.status.success());
    assert!(none.stdout.is_empty());
    assert!(text(&none.stderr).contains("no delivery recorded"));
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

    let valid = relais(&world, &["check"], None);
    // Then a setting that is wrong, next to the secrets.
    world
        .env
        .push(("RELAIS__SMTP__TLS".into(), "sometimes".into()));
    let invalid = relais(&world, &["check"], None);
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

    let exposed = relais(&world, &["check"], None);
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let private = relais(&world, &["check"], None);

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
async fn a_wrong_broker_password_is_named_as_a_refused_login_without_the_password() {
    let secret = "WRONG-SECRET-4f1";
    let url = format!("amqp://guest:{secret}@127.0.0.1:5672/%2f");
    let world = World::with_env(REGISTRY, &[("RELAIS__AMQP__URL", url.as_str())]).await;

    let status = relais(&world, &["status"], None);

    assert_eq!(status.status.code(), Some(1));
    let shown = text(&status.stdout) + &text(&status.stderr);
    assert!(
        shown.contains("cannot connect to the broker amqp://guest:***@127.0.0.1:5672/%2f"),
        "{shown}"
    );
    assert!(shown.contains("ACCESS_REFUSED"), "{shown}");
    assert!(!shown.contains(secret), "{shown}");
    world.cleanup().await;
}

#[tokio::test]
async fn a_replay_by_a_reason_relais_does_not_know_is_refused_with_the_list_of_reasons() {
    let world = World::new(REGISTRY).await;

    let output = relais(
        &world,
        &["dead-letters", "replay", "--reason", "rejeted"],
        None,
    );

    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "invalid value 'rejeted' for '--reason <REASON>': is not a dead-letter reason; the \
             reasons are invalid, unroutable, forbidden, conflict, rejected, exhausted, \
             delivery_limit"
        ),
        "{stderr}"
    );
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

    let ok = relais(&world, &["check"], None);
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
async fn a_mistyped_broker_url_is_refused_without_printing_its_password() {
    let world = World::new(REGISTRY).await;
    let mut env = world.env.clone();
    env.push((
        "RELAIS__AMQP__URL".into(),
        "amqps:relais:S3CR3T@127.0.0.1/%2f".into(),
    ));

    for command in [&["check"][..], &["status"], &["dead-letters", "list"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_relais"))
            .arg("--config")
            .arg(&world.config)
            .args(command)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert_eq!(output.status.code(), Some(1), "{command:?}: {all}");
        assert!(all.contains("amqp.url has no host"), "{command:?}: {all}");
        assert!(!all.contains("S3CR3T"), "{command:?}: {all}");
    }
    world.cleanup().await;
}

#[tokio::test]
async fn a_full_main_queue_refuses_the_next_alert_and_the_publisher_is_told() {
    // Arrange: a main queue of two alerts, and no relais consuming it.
    let world = World::with_env(REGISTRY, &[("RELAIS__AMQP__MAX_QUEUE_LENGTH", "2")]).await;

    // Act
    let outputs: Vec<Output> = (1..=4)
        .map(|n| {
            let body = alert(&format!("SOS75-FULL{n}"), "orientation_sociale", "75115");
            relais(&world, &["publish"], Some(&body))
        })
        .collect();

    // Assert: the queue full, the next alert refused, and said so.
    // A quorum queue applies its limit once it is passed: it takes one
    // alert past it, and refuses the next.
    for output in &outputs[..3] {
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    assert_eq!(outputs[3].status.code(), Some(1));
    let refused = text(&outputs[3].stderr);
    assert!(
        refused.contains("not published: the broker refused the alert (nack): the queue is full"),
        "{refused}"
    );
    assert_eq!(world.broker.depth(&world.queue).await, 3);
    world.cleanup().await;
}

#[tokio::test]
async fn resolve_refuses_a_postal_code_and_says_when_it_read_a_former_code() {
    let world = World::new(REGISTRY).await;
    let resolve = |commune: &str| {
        relais(
            &world,
            &[
                "resolve",
                "--kind",
                "orientation_sociale",
                "--commune",
                commune,
            ],
            None,
        )
    };

    // Paris 13e's postal code: before, it resolved to the département's
    // référent, silently.
    let postal = resolve("75013");
    let ajaccio = resolve("20004");

    assert_eq!(postal.status.code(), Some(1));
    assert!(postal.stdout.is_empty());
    assert_eq!(
        text(&postal.stderr),
        "relais: --commune is a postal code, not an INSEE commune code: give the commune's code \
         from the Code officiel géographique (Paris 13e is 75113, its postal code 75013)\n"
    );
    assert!(ajaccio.status.success(), "{}", text(&ajaccio.stderr));
    assert_eq!(text(&ajaccio.stdout), "ccas-ajaccio ccas@ajaccio.test\n");
    assert_eq!(
        text(&ajaccio.stderr),
        "# Ajaccio (2A004)\n# l'alerte donnait l'ancien code 20004, désormais Ajaccio\n\
         # network ccas: 1 référent(s) at the commune level\n"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn coverage_counts_each_level_and_lists_the_gaps_per_departement() {
    // The tests' registry: two référents for Paris 13e, the département's
    // service for the rest of Paris, Ajaccio's CCAS; no fallback for ccas.
    let world = World::new(REGISTRY).await;

    let report = relais(&world, &["coverage", "--network", "ccas", "--json"], None);
    let unknown = relais(&world, &["coverage", "--network", "msa"], None);
    let text_report = relais(&world, &["coverage", "--network", "ccas"], None);

    assert!(report.status.success(), "{}", text(&report.stderr));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let france = support::france();
    let units: Vec<_> = france.units().collect();
    let population = |code: &str| -> u64 {
        units
            .iter()
            .filter(|u| {
                u.commune.as_str() == code || (code == "75" && u.commune.as_str().starts_with("75"))
            })
            .map(|u| u64::from(u.population))
            .sum()
    };
    let total: u64 = units.iter().map(|u| u64::from(u.population)).sum();
    assert_eq!(report["millesime"], 2026);
    assert_eq!(report["communes"], units.len());
    assert_eq!(report["population"], total);
    let ccas = &report["networks"][0];
    assert_eq!(ccas["network"], "ccas");
    assert_eq!(report["networks"].as_array().unwrap().len(), 1);
    let level = |name: &str| {
        (
            ccas["levels"][name]["communes"].as_u64().unwrap(),
            ccas["levels"][name]["population"].as_u64().unwrap(),
        )
    };
    assert_eq!(level("arrondissement"), (1, population("75113")));
    assert_eq!(level("commune"), (1, population("2A004")));
    assert_eq!(
        level("departement"),
        (19, population("75") - population("75113"))
    );
    assert_eq!(level("epci").0 + level("region").0 + level("fallback").0, 0);
    assert_eq!(level("none").0, units.len() as u64 - 21);
    assert_eq!(ccas["fallback_only"], serde_json::json!([]));
    let corse_du_sud = ccas["unserved"]
        .as_array()
        .unwrap()
        .iter()
        .find(|gap| gap["departement"] == "2A")
        .unwrap();
    assert_eq!(corse_du_sud["name"], "Corse-du-Sud");
    let codes: Vec<&str> = corse_du_sud["communes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"2A017") && !codes.contains(&"2A004"),
        "{codes:?}"
    );

    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        text(&unknown.stderr),
        "relais: --network \"msa\" has no référent in the registry\n"
    );
    let lines = text(&text_report.stdout);
    assert!(
        lines.starts_with(&format!(
            "official geography, millésime 2026: {} communes and arrondissements, {total} inhabitants\nnetwork ccas\n",
            units.len()
        )),
        "{lines}"
    );
    assert!(
        lines.contains("    2A Corse-du-Sud: 123 commune(s)\n"),
        "{lines}"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn resolve_at_an_instant_shows_who_stands_in_for_an_absent_referent() {
    let registry = REGISTRY.replace(
        "communes = [\"75113\"]\n\n[[referent]]\nid = \"ccas-paris-13-accueil\"",
        "communes = [\"75113\"]\ndeputies = [\"ccas-paris\"]\nabsences = [{ from = \"2026-12-24\", to = \"2027-01-02\" }]\n\n[[referent]]\nid = \"ccas-paris-13-accueil\"",
    );
    assert_ne!(registry, REGISTRY, "the registry names the absence");
    let world = World::new(&registry).await;
    let resolve = |at: &str| {
        relais(
            &world,
            &[
                "resolve",
                "--kind",
                "orientation_sociale",
                "--commune",
                "75113",
                "--at",
                at,
            ],
            None,
        )
    };

    let before = resolve("2026-12-23T23:59:59+01:00");
    let during = resolve("2026-12-25T10:00:00+01:00");
    let bad = resolve("Christmas");

    assert_eq!(
        text(&before.stdout),
        "ccas-paris-13 camille.martin@ccas-paris13.test\nccas-paris-13-accueil accueil@ccas-paris13.test\n"
    );
    assert_eq!(
        text(&during.stdout),
        "ccas-paris social@paris.test\nccas-paris-13-accueil accueil@ccas-paris13.test\n"
    );
    assert_eq!(
        text(&during.stderr),
        "# Paris 13e Arrondissement (75113)\n# ccas-paris-13 is absent that day: ccas-paris receives it in its place\n# network ccas: 2 référent(s) at the arrondissement level\n"
    );
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        text(&bad.stderr),
        "relais: --at must be an RFC 3339 instant, e.g. 2026-12-25T10:00:00+01:00\n"
    );
    world.cleanup().await;
}
