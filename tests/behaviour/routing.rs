//! Who receives an alert: the registry's routes read against the official
//! geography (a postal code refused, a former code read, a commune found
//! through its EPCI, its département, its région), a kind without route
//! and a network with nobody for the territory dead-lettered, a deputy
//! standing in for an absent référent; the registry reloaded, in process
//! and by SIGHUP, a broken one refused without stopping; and `relais
//! resolve` and `relais coverage` giving an operator the same answers.

use relais_testkit as support;

use std::time::Duration;

use support::{Logs, REGISTRY, WAIT, World, alert, signal, text, wait_exit};

#[tokio::test]
async fn an_alert_of_a_kind_without_route_is_dead_lettered_as_unroutable() {
    let world = World::new(REGISTRY).await;
    let app = world.spawn();

    world
        .publish(
            "demande_visite",
            &alert("SOS75-V1", "demande_visite", "75113"),
        )
        .await;

    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead[0].routing_key, "demande_visite");
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("unroutable")
    );
    assert_eq!(
        dead[0].header("x-relais-error").as_deref(),
        Some("no route for kind `demande_visite` in the registry")
    );
    app.stop().await;
    assert!(world.smtp.mails().is_empty());
    world.cleanup().await;
}

#[tokio::test]
async fn a_network_with_nobody_for_the_territory_is_dead_lettered_after_the_others_are_emailed() {
    // cpam covers Corsica-du-Sud, caf does not.
    let registry = format!(
        "{REGISTRY}\n[[referent]]\nid = \"cpam-2a\"\nnetwork = \"cpam\"\nemail = \"referent@cpam-2a.test\"\ndepartements = [\"2A\"]\n"
    );
    let world = World::new(&registry).await;
    let app = world.spawn();

    world
        .publish(
            "acces_aux_droits",
            &alert("SOS2A-1", "acces_aux_droits", "2A004"),
        )
        .await;

    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].referent(), "cpam-2a");
    assert_eq!(mails[0].to, ["referent@cpam-2a.test"]);
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("unroutable")
    );
    assert_eq!(
        dead[0].header("x-relais-error").as_deref(),
        Some("no référent of network(s) caf for commune 2A004 (département 2A), and no fallback")
    );
    world.cleanup().await;
}

#[tokio::test]
async fn commune_codes_are_read_against_the_official_geography() {
    // Arrange: Paris 13e's CCAS, Ajaccio's CIAS by its EPCI, Île-de-France's
    // Carsat by its région, the département's service for the rest of Paris.
    let registry = r#"
[[route]]
kind = "orientation_sociale"
networks = ["ccas"]
label = "Orientation sociale"

[[route]]
kind = "acces_aux_droits"
networks = ["carsat"]

[[referent]]
id = "ccas-paris-13"
network = "ccas"
email = "ccas13@paris.test"
communes = ["75113"]

[[referent]]
id = "casvp"
network = "ccas"
email = "casvp@paris.test"
departements = ["75"]

[[referent]]
id = "cias-pays-ajaccien"
network = "ccas"
email = "cias@ajaccio.test"
epcis = ["242010056"]

[[referent]]
id = "carsat-idf"
network = "carsat"
email = "carsat@idf.test"
regions = ["11"]
"#;
    let world = World::new(registry).await;
    let app = world.spawn();

    // Act: Paris 13e's postal code; Paris 13e; Ajaccio by its former
    // Corsican code; a commune of the Pays Ajaccien; Melun for the Carsat.
    world
        .publish(
            "orientation_sociale",
            &alert("GEO-POSTAL", "orientation_sociale", "75013"),
        )
        .await;
    world
        .publish(
            "orientation_sociale",
            &alert("GEO-13E", "orientation_sociale", "75113"),
        )
        .await;
    world
        .publish(
            "orientation_sociale",
            &alert("GEO-FORMER", "orientation_sociale", "20004"),
        )
        .await;
    world
        .publish(
            "orientation_sociale",
            &alert("GEO-EPCI", "orientation_sociale", "2A017"),
        )
        .await;
    world
        .publish(
            "acces_aux_droits",
            &alert("GEO-REGION", "acces_aux_droits", "77288"),
        )
        .await;
    let mails = world.smtp.wait_for(4, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;

    // Assert: each alert to its office, said in words; the postal code in
    // `.dead`, said as such, not quoted.
    let mut got: Vec<(String, String, String)> = mails
        .iter()
        .map(|m| {
            (
                m.alert_id(),
                m.to.join(","),
                m.parsed().subject().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "GEO-13E".into(),
                "ccas13@paris.test".into(),
                "URGENT – Alerte Orientation sociale – Paris 13e Arrondissement (75113) – réf. GEO-13E".into()
            ),
            (
                "GEO-EPCI".into(),
                "cias@ajaccio.test".into(),
                "URGENT – Alerte Orientation sociale – Appietto (2A017) – réf. GEO-EPCI".into()
            ),
            (
                "GEO-FORMER".into(),
                "cias@ajaccio.test".into(),
                "URGENT – Alerte Orientation sociale – Ajaccio (2A004) – réf. GEO-FORMER".into()
            ),
            (
                "GEO-REGION".into(),
                "carsat@idf.test".into(),
                "URGENT – Alerte acces aux droits – Melun (77288) – réf. GEO-REGION".into()
            ),
        ]
    );
    let former = mails.iter().find(|m| m.alert_id() == "GEO-FORMER").unwrap();
    let text = former.text();
    assert!(
        text.contains("Territoire : Ajaccio (2A004), Corse-du-Sud (2A)\r\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "Code de commune : l'alerte donnait l'ancien code 20004, désormais Ajaccio\r\n"
        ),
        "{text}"
    );
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("invalid")
    );
    assert_eq!(
        dead[0].header("x-relais-error").as_deref(),
        Some(
            "field `territory.commune` is a postal code, not an INSEE commune code: give the \
             commune's code from the Code officiel géographique (Paris 13e is 75113, its postal \
             code 75013)"
        )
    );
    world.cleanup().await;
}

#[tokio::test]
async fn an_alert_for_an_absent_referent_goes_to_its_deputy_and_says_on_whose_behalf() {
    // Arrange: Paris 13e's référent is away from yesterday to tomorrow
    // (Paris dates); her deputy stands in.
    let today = relais::availability::paris_date(time::OffsetDateTime::now_utc());
    let (from, to) = (today.previous_day().unwrap(), today.next_day().unwrap());
    let registry = format!(
        r#"
[[route]]
kind = "orientation_sociale"
networks = ["ccas"]
label = "Orientation sociale"

[[referent]]
id = "ccas-paris-13"
network = "ccas"
name = "Camille Martin"
email = "camille.martin@ccas-paris13.test"
communes = ["75113"]
deputies = ["ccas-paris-13-adjoint"]
absences = [{{ from = "{from}", to = "{to}" }}]

[[referent]]
id = "ccas-paris-13-adjoint"
network = "ccas"
name = "Dominique Petit"
email = "dominique.petit@ccas-paris13.test"
communes = ["75114"]
"#
    );
    let world = World::new(&registry).await;
    let app = world.spawn();

    // Act
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-ABS", "orientation_sociale", "75113"),
        )
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;

    // Assert: the deputy only, told why.
    assert_eq!(world.smtp.mails().len(), 1);
    assert_eq!(mails[0].to, ["dominique.petit@ccas-paris13.test"]);
    assert_eq!(mails[0].referent(), "ccas-paris-13-adjoint");
    assert!(
        mails[0]
            .text()
            .contains("Vous recevez cette alerte en l'absence de Camille Martin."),
        "{}",
        mails[0].text()
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_reload_routes_later_alerts_to_a_new_referent_and_a_broken_registry_is_refused() {
    let world = World::new(REGISTRY).await;
    let app = world.spawn();
    let registry_file = world.dir.path().join("referents.toml");

    // A new référent for Paris 15e, loaded by a reload.
    let with_new = format!(
        "{REGISTRY}\n[[referent]]\nid = \"ccas-paris-15\"\nnetwork = \"ccas\"\nemail = \"ccas15@paris.test\"\ncommunes = [\"75115\"]\n"
    );
    std::fs::write(&registry_file, with_new).unwrap();
    app.reload().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-NEW", "orientation_sociale", "75115"),
        )
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].referent(), "ccas-paris-15");

    // A broken registry: refused, the one in force stays, relais runs on.
    std::fs::write(&registry_file, "[[referent]]\nid = \"x\"\n").unwrap();
    app.reload().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-AFTER", "orientation_sociale", "75115"),
        )
        .await;
    let mails = world.smtp.wait_for(2, WAIT).await;
    assert!(app.is_running());
    app.stop().await;
    assert_eq!(mails.len(), 2);
    assert_eq!(
        (mails[1].alert_id(), mails[1].referent()),
        ("SOS75-AFTER".into(), "ccas-paris-15".into())
    );
    world.cleanup().await;
}

#[tokio::test]
async fn sighup_reloads_a_valid_registry_and_refuses_a_broken_one_without_stopping() {
    let world = World::new(REGISTRY).await;
    if world.database.is_some() {
        // On a shared store the fleet's registry is the one published
        // there, not the file: `provenance` checks it.
        return world.cleanup().await;
    }
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    logs.expect("consuming alerts").await;
    let registry_file = world.dir.path().join("referents.toml");

    // A new référent for Paris 15e.
    let with_new = format!(
        "{REGISTRY}\n[[referent]]\nid = \"ccas-paris-15\"\nnetwork = \"ccas\"\nemail = \"ccas15@paris.test\"\ncommunes = [\"75115\"]\n"
    );
    std::fs::write(&registry_file, with_new).unwrap();
    signal(&relais, "HUP");
    logs.expect("registry reloaded").await;
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-HUP1", "orientation_sociale", "75115"),
        )
        .await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].referent(), "ccas-paris-15");

    // A broken one: every error logged, the registry in force kept.
    std::fs::write(
        &registry_file,
        "[[route]]\nkind = \"x\"\nnetworks = [\"nobody\"]\n",
    )
    .unwrap();
    signal(&relais, "HUP");
    logs.expect("registry reload refused").await;
    let refused = logs.all();
    let refused = refused
        .lines()
        .find(|l| l.contains("registry reload refused"))
        .unwrap();
    assert!(
        refused.contains(r#"route #1 (kind "x"): network "nobody" has no référent"#),
        "{refused}"
    );
    world
        .publish(
            "orientation_sociale",
            &alert("SOS75-HUP2", "orientation_sociale", "75115"),
        )
        .await;
    let mails = world.smtp.wait_for(2, WAIT).await;
    assert_eq!(mails[1].referent(), "ccas-paris-15");
    assert!(relais.try_wait().unwrap().is_none(), "relais keeps running");

    signal(&relais, "TERM");
    assert!(wait_exit(&mut relais, WAIT).await.success());
    world.cleanup().await;
}

#[tokio::test]
async fn resolve_prints_one_line_per_referent_or_why_nobody() {
    let world = World::new(REGISTRY).await;

    let found = world.cli(&[
        "resolve",
        "--kind",
        "orientation_sociale",
        "--commune",
        "75113",
    ]);
    assert!(found.status.success(), "{}", text(&found.stderr));
    assert_eq!(
        text(&found.stdout),
        "ccas-paris-13 camille.martin@ccas-paris13.test\nccas-paris-13-accueil accueil@ccas-paris13.test\n"
    );
    assert_eq!(
        text(&found.stderr),
        "# Paris 13e Arrondissement (75113)\n# network ccas: 2 référent(s) at the arrondissement level\n"
    );

    let departement = world.cli(&[
        "resolve",
        "--kind",
        "acces_aux_droits",
        "--departement",
        "75",
    ]);
    assert_eq!(
        text(&departement.stdout),
        "cpam-75 referent@cpam-paris.test\ncaf-75 referent@caf-paris.test\n"
    );

    let nobody = world.cli(&[
        "resolve",
        "--kind",
        "orientation_sociale",
        "--commune",
        "69123",
    ]);
    assert_eq!(nobody.status.code(), Some(1));
    assert!(nobody.stdout.is_empty());
    assert!(
        text(&nobody.stderr).contains(
            "no référent of network(s) ccas for commune 69123 (département 69), and no fallback"
        ),
        "{}",
        text(&nobody.stderr)
    );

    let bad = world.cli(&[
        "resolve",
        "--kind",
        "orientation_sociale",
        "--commune",
        "2C004",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("--commune is not an INSEE commune code"),
        "{}",
        text(&bad.stderr)
    );
    world.cleanup().await;
}

#[tokio::test]
async fn resolve_refuses_a_postal_code_and_says_when_it_read_a_former_code() {
    let world = World::new(REGISTRY).await;
    let resolve = |commune: &str| {
        world.cli(&[
            "resolve",
            "--kind",
            "orientation_sociale",
            "--commune",
            commune,
        ])
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

    let report = world.cli(&["coverage", "--network", "ccas", "--json"]);
    let unknown = world.cli(&["coverage", "--network", "msa"]);
    let text_report = world.cli(&["coverage", "--network", "ccas"]);

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
        world.cli(&[
            "resolve",
            "--kind",
            "orientation_sociale",
            "--commune",
            "75113",
            "--at",
            at,
        ])
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
