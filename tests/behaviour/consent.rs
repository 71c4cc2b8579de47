//! The person's consent, end to end. By default relais requires it: an
//! alert that does not say whether the person agreed is dead-lettered as
//! `invalid` with its reason, nobody emailed, and `relais publish` refuses
//! it; one that says so is delivered, its email says who agreed and when,
//! and `relais audit` shows it. With `consent.required = false` an alert
//! without it is delivered, its email saying that the alert does not tell,
//! and both `relais check` and `relais run` warn that the operator needs
//! another legal basis.

use relais_testkit as support;

use support::{Logs, REGISTRY, WAIT, World, alert, signal, text, wait_exit};

/// What relais says of an alert without consent, while it requires one.
const REFUSAL: &str = "consent is required: the alert has no `consent`, and this relais shares \
    an alert outside the care team only when it says that the person agreed, or on which legal \
    basis they were not asked (consent.required); see the contract";

/// What `relais check` and `relais run` say when consent is not required.
const WAIVED: &str = "consent is not required (consent.required = false): alerts that do not \
    say whether the person agreed are relayed outside the care team all the same, so the \
    operator must have another legal basis for sharing them";

/// The testkit's alert for Paris 15e (one référent, social@paris.test),
/// without its `consent`.
fn alert_without_consent(id: &str) -> Vec<u8> {
    let mut alert: serde_json::Value =
        serde_json::from_slice(&alert(id, "orientation_sociale", "75115")).unwrap();
    alert.as_object_mut().unwrap().remove("consent");
    alert.to_string().into_bytes()
}

/// The delivery lines `relais audit --alert <id>` prints, split in columns.
fn audit(world: &World, id: &str) -> Vec<Vec<String>> {
    let audit = world.cli(&["audit", "--alert", id]);
    assert!(audit.status.success(), "{}", text(&audit.stderr));
    text(&audit.stdout)
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn an_alert_without_consent_is_dead_lettered_as_invalid_and_nobody_is_emailed() {
    // Arrange
    let world = World::new(REGISTRY).await;
    let app = world.spawn();

    // Act
    world
        .publish("orientation_sociale", &alert_without_consent("SOS75-NOC"))
        .await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;

    // Assert
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("invalid")
    );
    assert_eq!(dead[0].header("x-relais-error").as_deref(), Some(REFUSAL));
    assert_eq!(dead[0].header("x-relais-served"), None);
    assert!(world.smtp.mails().is_empty(), "nobody is emailed");
    world.cleanup().await;
}

#[tokio::test]
async fn an_alert_with_consent_is_delivered_and_its_email_and_audit_say_who_agreed_and_when() {
    // Arrange
    let world = World::new(REGISTRY).await;
    let app = world.spawn();

    // Act
    world.publish_one("SOS75-OKC").await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    app.stop().await;

    // Assert
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["social@paris.test"]);
    let text = mails[0].text().replace("\r\n", "\n");
    assert!(
        text.contains(
            "pour une personne de votre territoire : Paris 15e Arrondissement (75115).\n\n\
             La personne a donné son accord pour ce signalement le 22/11/2026 à 08:10 (heure de Paris).\n"
        ),
        "{text}"
    );
    let lines = audit(&world, "SOS75-OKC");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0][2], "ccas-paris");
    assert_eq!(lines[0][6], "consent given:person:2026-11-22T07:10:00Z");
    world.cleanup().await;
}

#[tokio::test]
async fn with_consent_not_required_an_alert_without_it_is_delivered_saying_it_does_not_tell() {
    // Arrange
    let world = World::with_env(REGISTRY, &[("RELAIS__CONSENT__REQUIRED", "false")]).await;
    let app = world.spawn();

    // Act
    world
        .publish("orientation_sociale", &alert_without_consent("SOS75-OFF"))
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    app.stop().await;

    // Assert
    assert_eq!(mails.len(), 1);
    let text = mails[0].text().replace("\r\n", "\n");
    assert!(
        text.contains("Ce signalement n'indique pas si la personne a donné son accord.\n"),
        "{text}"
    );
    assert!(
        !text.contains("a donné son accord pour ce signalement"),
        "{text}"
    );
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    let lines = audit(&world, "SOS75-OFF");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0][6], "consent none");
    world.cleanup().await;
}

#[tokio::test]
async fn with_consent_not_required_check_and_run_say_the_operator_needs_another_legal_basis() {
    // Arrange
    let world = World::with_env(REGISTRY, &[("RELAIS__CONSENT__REQUIRED", "false")]).await;

    // Act
    let check = world.cli(&["check"]);
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    logs.expect("consuming alerts").await;
    signal(&relais, "TERM");
    wait_exit(&mut relais, WAIT).await;

    // Assert
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout)
            .lines()
            .any(|line| line == format!("warning:  {WAIVED}")),
        "{}",
        text(&check.stdout)
    );
    let warnings: Vec<String> = logs
        .all()
        .lines()
        .filter(|line| line.contains(WAIVED))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", logs.all());
    assert!(warnings[0].contains(" WARN "), "{}", warnings[0]);
    world.cleanup().await;
}

#[tokio::test]
async fn relais_publish_refuses_an_alert_without_consent_and_publishes_nothing() {
    // Arrange
    let world = World::new(REGISTRY).await;

    // Act
    let refused = world.cli_with_input(&["publish"], &alert_without_consent("SOS75-PUBC"));

    // Assert
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains(&format!("not published: the alert is invalid: {REFUSAL}")),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        world.broker.depth(&world.queue).await,
        0,
        "nothing published"
    );
    world.cleanup().await;
}
