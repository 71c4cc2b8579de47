//! relais on a three-node RabbitMQ cluster of the test's own (own node
//! names, ports and folders; the machine's broker untouched), given the
//! nodes in `amqp.urls`. In the middle of 1,000 alerts a node is stopped:
//! the one that leads the main queue, then one that does not. Each time,
//! every alert is emailed once (counted at the SMTP server), none missing,
//! none twice, and nothing is left in the main, retry or dead queues.
//!
//! One test, the scenarios one after the other: they stop nodes that the
//! other would use.

use relais_testkit as support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::rabbitmq::Cluster;
use support::{Broker, REGISTRY, World};

const ALERTS: usize = 1000;
const WAIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_every_alert_is_emailed_once_when_the_leader_or_a_follower_node_stops() {
    let cluster = tokio::task::spawn_blocking(|| Cluster::start("relais-cluster", 3))
        .await
        .unwrap();

    // The node leading the main queue stops mid-stream.
    stop_a_node_in_the_middle(&cluster, "leader", |leader| leader).await;
    // A node that leads nothing of relais's stops mid-stream.
    stop_a_node_in_the_middle(&cluster, "follower", |leader| (leader + 1) % 3).await;
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
    world.smtp.wait_for(300, WAIT).await;
    let node = cluster.nodes[stopped].name.clone();
    let stopping = &cluster.nodes[stopped];
    tokio::task::block_in_place(|| stopping.stop_app());
    let mails = world.smtp.wait_for(ALERTS, WAIT).await;
    // Nothing more comes.
    let mails_after = world
        .smtp
        .wait_for(ALERTS + 1, Duration::from_secs(3))
        .await;
    app.stop().await;
    tokio::task::block_in_place(|| stopping.start_app());

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
