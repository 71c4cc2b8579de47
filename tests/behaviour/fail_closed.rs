//! Defaults and settings that would leave relais open, refused or said
//! out loud: a registry without `[[publisher]]` warned of at start and at
//! each reload and shown in a gauge; a publisher logged in as relais's own
//! broker user, or escalation chains that outlive the store's memory,
//! refused by `relais check`, at start and at reload (the registry in force
//! stays); `relais publish` heard as the publisher it logs in as; and a
//! readable settings file holding a cluster's passwords warned of.
//!
//! They run the real binary (its logs, its exit, SIGHUP) against the real
//! broker, each in a world of its own.

use std::time::Duration;

use relais_testkit as support;
use support::smtp::SmtpServer;
use support::{Logs, REGISTRY, WAIT, World, alert, http_get, sample, signal, text, wait_exit};

use support::DispatchUser;

/// The warning relais logs when the registry declares no publisher.
const NO_PUBLISHER: &str = "the registry declares no [[publisher]]";

/// `registry` with a `[[publisher]]` for broker user `user`, SOS Médecins
/// Paris, in Paris.
fn with_publisher(registry: &str, user: &str) -> String {
    format!(
        "{registry}
[[publisher]]
user = \"{user}\"
association = \"SOS Médecins Paris\"
departements = [\"75\"]
"
    )
}

/// A world whose `/metrics` listens on a port of its own, and that port.
async fn world_with_endpoint(registry: &str, env: &[(&str, &str)]) -> (World, u16) {
    let port = SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("RELAIS__HTTP__LISTEN", &listen));
    (World::with_env(registry, &env).await, port)
}

/// How relais exited within `WAIT`; `None`, and stopped, if it was
/// still running.
async fn exit_or_kill(relais: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(status) = relais.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = relais.kill();
    let _ = relais.wait();
    None
}

/// The metrics exposition, once the endpoint answers.
async fn metrics(port: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(port, "/metrics").await;
        if status == 200 || tokio::time::Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn with_no_publisher_declared_relais_warns_at_start_and_at_each_reload_and_counts_them() {
    // Arrange
    let (world, port) = world_with_endpoint(REGISTRY, &[]).await;
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    logs.expect("registry loaded").await;
    let at_start = metrics(port).await;

    // Act: a reload of the same registry, then of one with a publisher.
    signal(&relais, "HUP");
    assert!(logs.wait_for("registry reloaded", 1, WAIT).await);
    std::fs::write(
        world.dir.path().join("referents.toml"),
        with_publisher(REGISTRY, "sos75-dispatch"),
    )
    .unwrap();
    signal(&relais, "HUP");
    assert!(logs.wait_for("registry reloaded", 2, WAIT).await);
    let with_one = metrics(port).await;
    signal(&relais, "TERM");
    wait_exit(&mut relais, WAIT).await;

    // Assert: a warning at start and at the first reload, none once a
    // publisher is declared; the gauge follows.
    assert_eq!(logs.count(NO_PUBLISHER), 2, "{}", logs.all());
    let warning = logs
        .all()
        .lines()
        .find(|line| line.contains(NO_PUBLISHER))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("any broker user may publish alerts for any territory"),
        "{warning}"
    );
    assert_eq!(sample(&at_start, "relais_publishers_declared"), Some(0.0));
    assert_eq!(sample(&with_one, "relais_publishers_declared"), Some(1.0));
    world.cleanup().await;
}

#[tokio::test]
async fn a_publisher_logged_in_as_relais_itself_is_refused_by_check_at_start_and_at_reload() {
    // Arrange: the world's relais logs in as `guest`.
    let forging = with_publisher(REGISTRY, "guest");
    let refusal = "publisher `guest` is relais's own broker login";
    let (world, port) = world_with_endpoint(&forging, &[]).await;

    // Act and Assert: refused by check, at start, and at reload (the
    // registry in force kept, relais alive).
    let after = refused_everywhere(&world, port, &forging, refusal).await;
    assert_eq!(sample(&after, "relais_publishers_declared"), Some(0.0));
    world.cleanup().await;
}

#[tokio::test]
async fn escalation_chains_longer_than_the_store_remembers_are_refused_by_check_at_start_and_at_reload()
 {
    // Arrange: a chain of three waits of 20 h, and a day more, is 3 days
    // 12 h; the store remembers 2 days.
    let long = REGISTRY.replacen(
        "label = \"Orientation sociale\"",
        "label = \"Orientation sociale\"\nescalate_after = { urgent = \"12h\", normal = \"20h\" }",
        1,
    );
    assert_ne!(long, REGISTRY);
    let refusal = "route `orientation_sociale` escalates after 20h: its chain lasts up to 2days \
                   12h (three waits), which with a day's margin is longer than store.retention \
                   (2days)";
    let (world, port) = world_with_endpoint(&long, &[("RELAIS__STORE__RETENTION", "2days")]).await;

    // Act and Assert: refused by check, at start, and at reload.
    refused_everywhere(&world, port, &long, refusal).await;
    world.cleanup().await;
}

#[tokio::test]
async fn relais_publish_logged_in_as_a_declared_publisher_delivers_its_alert() {
    // Arrange: the dispatch user may alert about Paris; relais runs.
    let dispatch = DispatchUser::create("cli");
    let mut world = World::new(&with_publisher(REGISTRY, &dispatch.name)).await;
    let app = world.spawn();

    // Act: an operator publishes as the dispatch software.
    let url = format!(
        "amqp://{}:dispatch-secret@127.0.0.1:5672/%2f",
        dispatch.name
    );
    world.env.push(("RELAIS__AMQP__URL".into(), url));
    let published = world.cli_with_input(
        &["publish"],
        &alert("SOS75-CLI", "orientation_sociale", "75113"),
    );

    // Assert: delivered to the two référents of Paris 13e, nothing refused.
    assert!(published.status.success(), "{}", text(&published.stderr));
    let mails = world.smtp.wait_for(2, WAIT).await;
    app.stop().await;
    let mut to: Vec<String> = mails.iter().map(|m| m.to.join(",")).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "accueil@ccas-paris13.test",
            "camille.martin@ccas-paris13.test"
        ]
    );
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.env.clear();
    world.cleanup().await;
}

#[tokio::test]
async fn relais_publish_logged_in_as_a_user_the_registry_does_not_declare_is_refused_unpublished() {
    // Arrange: a declared publisher; `relais publish` on relais's own
    // settings logs in as relais (`guest`), which no publisher may be.
    let dispatch = DispatchUser::create("cli-refused");
    let world = World::new(&with_publisher(REGISTRY, &dispatch.name)).await;

    // Act
    let published = world.cli_with_input(
        &["publish"],
        &alert("SOS75-CLI-NO", "orientation_sociale", "75113"),
    );

    // Assert: refused, saying why and what to do; nothing on the broker.
    assert_eq!(published.status.code(), Some(1));
    assert!(
        text(&published.stderr).contains(
            "not published: the registry declares its publishers, and broker user `guest` is \
             not one of them: relais would dead-letter the alert as `forbidden`; publish with a \
             declared publisher's broker URL"
        ),
        "{}",
        text(&published.stderr)
    );
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    world.cleanup().await;
}

#[tokio::test]
async fn check_warns_of_a_readable_settings_file_holding_a_cluster_s_passwords() {
    use std::os::unix::fs::PermissionsExt as _;
    // Arrange: the world's settings file lists its broker's nodes, a
    // password inline, and other users can read it.
    let world = World::new(REGISTRY).await;
    let settings = std::fs::read_to_string(&world.config).unwrap();
    let cluster = settings.replacen(
        "url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"",
        "urls = [\"amqp://relais:PASSWORD-NODE@127.0.0.1:5672/%2f\"]",
        1,
    );
    assert_ne!(cluster, settings, "the world's broker URL");
    std::fs::write(&world.config, cluster).unwrap();
    std::fs::set_permissions(&world.config, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Act
    let checked = world.cli(&["check"]);

    // Assert: said, without the password.
    let out = text(&checked.stdout);
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    assert!(
        out.contains(&format!(
            "warning:  {} holds a secret inline (the password of amqp.urls) and can be read by \
             other users (mode 0644)",
            world.config.display()
        )),
        "{out}"
    );
    assert!(!out.contains("PASSWORD-NODE"), "{out}");
    world.cleanup().await;
}

/// Checks that registry `bad` is refused, saying `refusal`: by `relais
/// check`, by a relais starting on it, and by a relais running on
/// [`REGISTRY`] given it at a reload, which keeps its registry, stays
/// alive, and counts the failure. Returns that relais's metrics after the
/// reload; it is stopped.
async fn refused_everywhere(world: &World, port: u16, bad: &str, refusal: &str) -> String {
    std::fs::write(world.dir.path().join("referents.toml"), bad).unwrap();
    let checked = world.cli(&["check"]);
    let mut refused = world.spawn_binary();
    let start_logs = Logs::collect(&mut refused);
    let start = exit_or_kill(&mut refused).await;
    assert_eq!(checked.status.code(), Some(1), "{}", text(&checked.stdout));
    assert!(
        text(&checked.stderr).contains(refusal),
        "{}",
        text(&checked.stderr)
    );
    assert!(start.is_some_and(|status| !status.success()), "{start:?}");
    assert!(
        start_logs.wait_for(refusal, 1, WAIT).await,
        "{}",
        start_logs.all()
    );

    std::fs::write(world.dir.path().join("referents.toml"), REGISTRY).unwrap();
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    logs.expect("registry loaded").await;
    std::fs::write(world.dir.path().join("referents.toml"), bad).unwrap();
    signal(&relais, "HUP");
    assert!(logs.wait_for("registry reload refused", 1, WAIT).await);
    assert_eq!(logs.count(refusal), 1, "{}", logs.all());
    let after = metrics(port).await;
    assert_eq!(
        sample(&after, "relais_registry_reload_failures_total"),
        Some(1.0)
    );
    assert_eq!(
        http_get(port, "/healthz").await,
        (200, "alive\n".to_owned())
    );
    signal(&relais, "TERM");
    assert!(wait_exit(&mut relais, WAIT).await.success());
    after
}
