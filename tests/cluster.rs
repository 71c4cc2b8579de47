//! relais on a three-node RabbitMQ cluster of the test's own (own node
//! names, ports and folders; the machine's broker untouched), given the
//! nodes in `amqp.urls`. In the middle of 1,000 alerts a node is stopped:
//! the one that leads the main queue, then one that does not. Each time,
//! every alert is emailed once (counted at the SMTP server), none missing,
//! none twice, and nothing is left in the main, retry or dead queues.
//!
//! Then, with PostgreSQL and two relais (active and standby), all the faults
//! in a row in one stream of 1,000 alerts: the active relais killed, the
//! node leading the main queue stopped, PostgreSQL restarted.
//!
//! The tests share one cluster and take turns: they stop nodes that the
//! other would use.

use relais_testkit as support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::rabbitmq::Cluster;
use support::{Broker, REGISTRY, STREAM_WAIT, World, signal, wait_exit, wait_for_role};

const ALERTS: usize = 1000;

/// The cluster of this test binary, started by the first test to need it.
static CLUSTER: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
/// One test at a time.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn cluster() -> &'static Cluster {
    if CLUSTER.get().is_none() {
        let started = tokio::task::spawn_blocking(|| Cluster::start("relais-cluster", 3))
            .await
            .unwrap();
        let _ = CLUSTER.set(started);
    }
    CLUSTER.get().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_alert_is_emailed_once_when_the_leader_or_a_follower_node_stops() {
    let _turn = TURN.lock().await;
    let cluster = cluster().await;

    // The node leading the main queue stops mid-stream.
    stop_a_node_in_the_middle(cluster, "leader", |leader| leader).await;
    // A node that leads nothing of relais's stops mid-stream.
    stop_a_node_in_the_middle(cluster, "follower", |leader| (leader + 1) % 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_relais_killed_the_leader_node_stopped_and_postgresql_restarted_in_one_stream_lose_nothing()
 {
    let _turn = TURN.lock().await;
    let cluster = cluster().await;
    // Arrange: PostgreSQL, 1,000 alerts, relais A active and B standby.
    let world = World::on_cluster_with_store(
        REGISTRY,
        &cluster.urls(),
        &[],
        Some(support::postgres::server()),
    )
    .await;
    world.smtp.set_latency(Duration::from_millis(5));
    world.publish_stream("CL-ALL", ALERTS).await;
    let (port_a, port_b) = (
        support::smtp::SmtpServer::free_port().await,
        support::smtp::SmtpServer::free_port().await,
    );
    let listen = |port: u16| format!("127.0.0.1:{port}");
    let mut a = world.spawn_binary_with(&[("RELAIS__HTTP__LISTEN", &listen(port_a))]);
    assert_eq!(wait_for_role(port_a, "active").await, "active");
    let mut b = world.spawn_binary_with(&[("RELAIS__HTTP__LISTEN", &listen(port_b))]);
    let logs_b = support::Logs::collect(&mut b);
    assert_eq!(wait_for_role(port_b, "standby").await, "standby");

    // Act 1: A is killed, its emails in flight unanswered.
    world.smtp.wait_for(200, STREAM_WAIT).await;
    let held = world.smtp.hold_in_flight().await;
    signal(&a, "KILL");
    wait_exit(&mut a, STREAM_WAIT).await;
    world.smtp.drop_held();
    assert_eq!(wait_for_role(port_b, "active").await, "active");
    // Act 2: the node leading the main queue stops.
    world.smtp.wait_for(500, STREAM_WAIT).await;
    let leader = cluster.leader_of(&world.queue);
    let inspect = Broker::connect_url(&cluster.nodes[(leader + 1) % 3].url()).await;
    let stopping = &cluster.nodes[leader];
    tokio::task::block_in_place(|| stopping.stop_app());
    // Act 3: PostgreSQL restarts.
    world.smtp.wait_for(700, STREAM_WAIT).await;
    tokio::task::block_in_place(support::postgres::restart);
    let all = world.smtp.wait_for(ALERTS, STREAM_WAIT).await;
    let after = world
        .smtp
        .wait_for(ALERTS + 1, Duration::from_secs(3))
        .await;
    tokio::task::block_in_place(|| stopping.start_app());
    signal(&b, "TERM");
    for _ in 0..600 {
        if b.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        b.try_wait().unwrap().is_some(),
        "B did not stop:\n{}",
        logs_b.all()
    );

    // Assert: every alert emailed once; the queues empty.
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &after {
        *per_alert.entry(mail.alert_id()).or_default() += 1;
    }
    let twice: Vec<_> = per_alert.iter().filter(|(_, n)| **n > 1).collect();
    assert!(held > 0, "emails were in flight at the kill");
    assert_eq!(all.len(), ALERTS);
    assert!(twice.is_empty(), "emailed twice: {twice:?}");
    assert_eq!((after.len(), per_alert.len()), (ALERTS, ALERTS));
    let topology = relais::amqp::Topology::new(&world.settings());
    for queue in topology.queues() {
        assert_eq!(inspect.depth(queue).await, 0, "{queue}");
    }
    world.cleanup().await;
}

/// Publishes 1,000 alerts, starts relais, stops the node `pick(leader)`
/// once 300 emails went out, and checks that each alert was emailed once.
async fn stop_a_node_in_the_middle(cluster: &Cluster, case: &str, pick: impl Fn(usize) -> usize) {
    // Arrange: the queues declared through the first node, 1,000 alerts.
    let world = World::on_cluster(REGISTRY, &cluster.urls(), &[]).await;
    let leader = cluster.leader_of(&world.queue);
    let stopped = pick(leader);
    let watcher = (0..3).find(|n| *n != stopped).unwrap();
    let inspect = Broker::connect_url(&cluster.nodes[watcher].url()).await;
    world.publish_stream(&format!("CL-{case}"), ALERTS).await;
    let app = world.spawn();

    // Act: a node stops in the middle of the stream.
    world.smtp.wait_for(300, STREAM_WAIT).await;
    let node = cluster.nodes[stopped].name.clone();
    let stopping = &cluster.nodes[stopped];
    tokio::task::block_in_place(|| stopping.stop_app());
    let mails = world.smtp.wait_for(ALERTS, STREAM_WAIT).await;
    // Nothing more comes.
    let mails_after = world
        .smtp
        .wait_for(ALERTS + 1, Duration::from_secs(3))
        .await;
    tokio::task::block_in_place(|| stopping.start_app());
    app.stop().await;

    // Assert
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &mails_after {
        *per_alert.entry(mail.alert_id()).or_default() += 1;
    }
    let twice: Vec<_> = per_alert.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(
        mails.len(),
        ALERTS,
        "{case} ({node}) stopped: {} emails",
        mails.len()
    );
    assert_eq!(mails_after.len(), ALERTS, "{case}: emails after the end");
    assert!(twice.is_empty(), "{case}: emailed twice: {twice:?}");
    assert_eq!(per_alert.len(), ALERTS, "{case}: alerts emailed");
    let settings = world.settings();
    let topology = relais::amqp::Topology::new(&settings);
    for queue in topology.queues() {
        assert_eq!(inspect.depth(queue).await, 0, "{case}: {queue}");
    }
    world.cleanup().await;
}
