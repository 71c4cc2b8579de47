//! Proving addresses before an alert needs them: `relais registry probe`
//! sends each référent named (or each address a new registry adds or
//! changes) a test email clearly marked as such, says which the mail
//! server refused, and, with the acknowledgement pages served, lets the
//! office confirm receipt from the email's link, in a real browser;
//! `--status` lists who has not.

use relais_testkit as support;

use std::time::Duration;

use support::browser::Browser;
use support::{ACK_SECRET, REGISTRY, WAIT, World, link_in, text};

#[tokio::test]
async fn a_probe_reports_the_refused_address_and_the_office_confirms_receipt_from_its_link() {
    // Arrange: relais serving its pages; the mail server refuses Paris's
    // address.
    let (world, port) = World::with_ack(REGISTRY, ACK_SECRET, &[]).await;
    world
        .smtp
        .refuse_recipient("social@paris.test", 550, "5.1.1 No such mailbox");
    let app = world.spawn();

    // Act: two référents probed; Camille confirms from her email.
    let probed = world
        .cli_beside(&[
            "registry",
            "probe",
            "--referent",
            "ccas-paris-13",
            "--referent",
            "ccas-paris",
        ])
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(
        mails.len(),
        1,
        "{}{}",
        text(&probed.stdout),
        text(&probed.stderr)
    );
    let link = link_in(&mails[0].text(), "/probe/");
    let browser = Browser::start().await;
    browser.resize(360, 800).await;
    browser.open(&link).await;
    let asked = browser.text().await;
    let before = world.cli(&["registry", "probe", "--status"]);
    browser.click("form button").await;
    let mut confirmed = String::new();
    for _ in 0..100 {
        confirmed = browser.text().await;
        if confirmed.contains("Merci") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = world.cli(&["registry", "probe", "--status"]);
    app.stop().await;

    // Assert: one email, to Camille, marked as a test; the refusal said.
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["camille.martin@ccas-paris13.test"]);
    assert_eq!(
        mails[0].parsed().subject(),
        Some("Message de test de relais — aucune action demandée")
    );
    let token = link.rsplit('/').next().unwrap().to_owned();
    assert_eq!(mails[0].header("X-Relais-Probe"), Some(token.clone()));
    assert_eq!(link, format!("http://127.0.0.1:{port}/probe/{token}"));
    assert!(
        mails[0].text().contains("Aucune action n'est demandée"),
        "{}",
        mails[0].text()
    );
    assert_eq!(probed.status.code(), Some(1));
    assert_eq!(
        text(&probed.stdout),
        "ccas-paris-13\tcamille.martin@ccas-paris13.test\taccepted\t250 2.0.0 Ok: queued as TEST1\n\
         ccas-paris\tsocial@paris.test\trefused\tSMTP: the server refused at RCPT TO: 550 5.1.1 \
         No such mailbox\n"
    );
    assert_eq!(
        text(&probed.stderr),
        "# each office can confirm receipt from the email's link: relais registry probe --status\n\
         relais: 1 of 2 address(es) could not be reached: correct them in the registry, then \
         probe them again\n"
    );
    assert!(
        asked.contains("camille.martin@ccas-paris13.test")
            && asked.contains("Confirmer la réception"),
        "{asked}"
    );
    assert!(confirmed.contains("est confirmée"), "{confirmed}");
    let states = |output: &std::process::Output| -> Vec<String> {
        text(&output.stdout)
            .lines()
            .map(|line| line.split('\t').skip(1).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(
        states(&before),
        [
            "ccas-paris social@paris.test refused: SMTP: the server refused at RCPT TO: 550 5.1.1 No such mailbox",
            "ccas-paris-13 camille.martin@ccas-paris13.test not confirmed",
        ]
    );
    let after_states = states(&after);
    assert_eq!(
        after_states[0],
        "ccas-paris social@paris.test refused: SMTP: the server refused at RCPT TO: 550 5.1.1 No such mailbox"
    );
    assert!(
        after_states[1].starts_with("ccas-paris-13 camille.martin@ccas-paris13.test confirmed 20"),
        "{after_states:?}"
    );
    assert_eq!(
        text(&after.stderr),
        "# 0 of 2 address(es) not confirmed yet\n"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_new_registry_s_changed_and_added_addresses_are_probed_and_no_other() {
    // Arrange: Camille moves to a new address, and a référent is added.
    let world = World::new(REGISTRY).await;
    let old = world.dir.path().join("referents.toml");
    let new = world.dir.path().join("new.toml");
    std::fs::write(
        &new,
        format!(
            "{}\n[[referent]]\nid = \"ccas-paris-15\"\nnetwork = \"ccas\"\nemail = \"ccas15@paris.test\"\ncommunes = [\"75115\"]\n",
            REGISTRY.replace("camille.martin@ccas-paris13.test", "c.martin@ccas-paris13.test")
        ),
    )
    .unwrap();

    // Act
    let probed = world
        .cli_beside(&[
            "registry",
            "probe",
            "--registry",
            new.to_str().unwrap(),
            "--changed-from",
            old.to_str().unwrap(),
        ])
        .await;
    let unchanged = world.cli(&["registry", "probe", "--changed-from", old.to_str().unwrap()]);

    // Assert
    assert!(
        probed.status.success(),
        "{}{}",
        text(&probed.stdout),
        text(&probed.stderr)
    );
    let mut to: Vec<String> = world
        .smtp
        .wait_for(2, WAIT)
        .await
        .iter()
        .flat_map(|mail| mail.to.clone())
        .collect();
    to.sort();
    assert_eq!(to, ["c.martin@ccas-paris13.test", "ccas15@paris.test"]);
    assert_eq!(
        text(&probed.stdout)
            .lines()
            .map(|line| line.split('\t').take(3).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        [
            "ccas-paris-13 c.martin@ccas-paris13.test accepted",
            "ccas-paris-15 ccas15@paris.test accepted",
        ]
    );
    assert!(unchanged.status.success(), "{}", text(&unchanged.stderr));
    assert_eq!(
        text(&unchanged.stdout),
        "no address to probe: the registry adds or changes none\n"
    );
    world.cleanup().await;
}
