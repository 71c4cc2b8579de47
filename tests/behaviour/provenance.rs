//! Which registry routed each alert: every delivery names the registry's
//! SHA-256 (and its `version` label) in `relais audit`; and on a store
//! several relais share, the fleet routes with the registry published on
//! it, whatever each host's file says, so that a takeover never changes
//! who receives what, and `relais registry publish` puts a new one live on
//! every host without a restart.

use relais_testkit as support;

use std::time::Duration;

use support::{
    REGISTRY, STREAM_WAIT, World, registry_digest, signal, text, wait_exit, wait_for_role,
};

/// The registry column of each delivery line of `relais audit --alert id`.
fn audited_registries(world: &World, id: &str) -> Vec<String> {
    let audit = world.cli(&["audit", "--alert", id]);
    assert!(audit.status.success(), "{}", text(&audit.stderr));
    text(&audit.stdout)
        .lines()
        .map(|line| line.split('\t').nth(7).unwrap_or_default().to_owned())
        .collect()
}

/// `REGISTRY`, labelled, with Camille of the CCAS of Paris 13e at a new
/// address.
fn moved() -> String {
    format!(
        "version = \"2026-12 révision\"\n{}",
        REGISTRY.replace(
            "camille.martin@ccas-paris13.test",
            "c.martin@ccas-paris13.test"
        )
    )
}

#[tokio::test]
async fn each_delivery_names_the_registry_that_routed_it_across_a_change() {
    // Arrange
    let world = World::new(REGISTRY).await;
    let app = world.spawn();
    world.publish_one("SOS75-PROV-1").await;
    world.smtp.wait_for(1, STREAM_WAIT).await;

    // Act: a new registry, with a version label, reloaded (on a SQLite
    // store), or published (on a PostgreSQL store, which a fleet shares:
    // there a reload does not change the fleet's registry).
    let file = world.dir.path().join("referents.toml");
    std::fs::write(&file, moved()).unwrap();
    if world.database.is_some() {
        let published = world.cli(&["registry", "publish", file.to_str().unwrap()]);
        assert!(published.status.success(), "{}", text(&published.stderr));
        tokio::time::sleep(relais::live_registry::FOLLOW_EVERY + Duration::from_secs(1)).await;
    } else {
        app.reload().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    world.publish_one("SOS75-PROV-2").await;
    world.smtp.wait_for(2, STREAM_WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;

    // Assert
    assert_eq!(
        audited_registries(&world, "SOS75-PROV-1"),
        [format!("registry {}", registry_digest(REGISTRY))]
    );
    assert_eq!(
        audited_registries(&world, "SOS75-PROV-2"),
        [format!(
            "registry {} (2026-12 révision)",
            registry_digest(&moved())
        )]
    );
    // The file behind each delivery can be taken out of the store again.
    let versions = world.cli(&["registry", "versions"]);
    // (Both may have been first used within one second: sorted.)
    let mut listed: Vec<String> = text(&versions.stdout)
        .lines()
        .map(|line| line.split('\t').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    listed.sort();
    let mut expected = [
        format!("{} 2026-12 révision", registry_digest(&moved())),
        format!("{} -", registry_digest(REGISTRY)),
    ];
    expected.sort();
    assert_eq!(listed, expected);
    let shown = world.cli(&["registry", "show", &registry_digest(&moved())]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert_eq!(text(&shown.stdout), moved());
    let unknown = world.cli(&["registry", "show", "0000000000000"]);
    assert_eq!(
        (unknown.status.code(), text(&unknown.stderr)),
        (
            Some(1),
            "relais: the store keeps no registry sha256:0000000000000…: relais registry versions \
             lists those it keeps\n"
                .to_owned()
        )
    );
    world.cleanup().await;
}

#[tokio::test]
async fn a_standby_with_another_file_takes_over_with_the_fleet_s_registry_until_one_is_published() {
    // Arrange: A starts first on an empty store, with REGISTRY: the
    // fleet's. B's file moves Camille to a new address.
    let world = World::on_postgres(REGISTRY).await;
    std::fs::write(world.dir.path().join("moved.toml"), moved()).unwrap();
    let (port_a, port_b) = (
        support::smtp::SmtpServer::free_port().await,
        support::smtp::SmtpServer::free_port().await,
    );
    let listen = |port: u16| format!("127.0.0.1:{port}");
    let mut a = world.spawn_binary_with(&[("RELAIS__HTTP__LISTEN", &listen(port_a))]);
    assert_eq!(wait_for_role(port_a, "active").await, "active");
    let mut b = world.spawn_binary_with(&[
        ("RELAIS__HTTP__LISTEN", &listen(port_b)),
        ("RELAIS__REGISTRY__PATH", "moved.toml"),
    ]);
    assert_eq!(wait_for_role(port_b, "standby").await, "standby");
    let logs_b = support::Logs::collect(&mut b);

    // Act: A dies; B takes over; an alert for Paris 13e.
    signal(&a, "KILL");
    wait_exit(&mut a, STREAM_WAIT).await;
    assert_eq!(wait_for_role(port_b, "active").await, "active");
    world
        .publish(
            "orientation_sociale",
            &support::alert("SOS75-FLEET-1", "orientation_sociale", "75113"),
        )
        .await;
    let before = world.smtp.wait_for(2, STREAM_WAIT).await;

    // Then B's file is published: B routes with it, without a restart.
    let moved_file = world.dir.path().join("moved.toml");
    let published = world.cli(&["registry", "publish", moved_file.to_str().unwrap()]);
    tokio::time::sleep(relais::live_registry::FOLLOW_EVERY + Duration::from_secs(1)).await;
    world
        .publish(
            "orientation_sociale",
            &support::alert("SOS75-FLEET-2", "orientation_sociale", "75113"),
        )
        .await;
    let after = world.smtp.wait_for(4, STREAM_WAIT).await;
    signal(&b, "TERM");
    wait_exit(&mut b, STREAM_WAIT).await;

    // Assert: the takeover kept the fleet's registry (Camille's old
    // address), and said that B's file differs; the publication moved her.
    let mut first: Vec<String> = before.iter().flat_map(|mail| mail.to.clone()).collect();
    first.sort();
    assert_eq!(
        first,
        [
            "accueil@ccas-paris13.test",
            "camille.martin@ccas-paris13.test"
        ],
        "B's logs:\n{}",
        logs_b.all()
    );
    assert_eq!(
        logs_b.count("registry.path differs from the registry published on the store"),
        1,
        "B's logs:\n{}",
        logs_b.all()
    );
    assert!(published.status.success(), "{}", text(&published.stderr));
    assert_eq!(
        text(&published.stdout),
        format!(
            "published registry sha256:{} (6 référents, version 2026-12 révision)\n\
             in place of sha256:{}\n\
             every relais on this store routes with it within 5s\n",
            registry_digest(&moved()),
            registry_digest(REGISTRY)
        )
    );
    let mut second: Vec<String> = after[2..].iter().flat_map(|mail| mail.to.clone()).collect();
    second.sort();
    assert_eq!(
        second,
        ["accueil@ccas-paris13.test", "c.martin@ccas-paris13.test"]
    );
    assert_eq!(
        audited_registries(&world, "SOS75-FLEET-2"),
        vec![format!("registry {} (2026-12 révision)", registry_digest(&moved())); 2]
    );
    assert_eq!(
        logs_b.count("registry reloaded"),
        1,
        "B's logs:\n{}",
        logs_b.all()
    );
    world.cleanup().await;
}

#[tokio::test]
async fn publishing_on_a_sqlite_store_is_refused_saying_what_to_do_instead() {
    let world = World::new(REGISTRY).await;
    if world.database.is_some() {
        // The PostgreSQL pass: publishing is the fleet test's.
        return world.cleanup().await;
    }
    let moved_file = world.dir.path().join("moved.toml");
    std::fs::write(&moved_file, moved()).unwrap();

    let published = world.cli(&["registry", "publish", moved_file.to_str().unwrap()]);

    assert_eq!(published.status.code(), Some(1));
    assert_eq!(
        text(&published.stderr),
        "relais: the store is SQLite: one relais, which routes with registry.path; put the \
         file there and reload relais (systemctl reload relais, or SIGHUP)\n"
    );
    world.cleanup().await;
}
