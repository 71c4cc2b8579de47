//! Network partitions: relais on a host of the test's own (a network
//! namespace joined to this machine by one veth pair per link:
//! `relais_testkit::netns`), a link taken down in the middle of a stream
//! of alerts, then brought up again. Nothing is said to either end: what
//! crosses the link is dropped, as by a switch that died.
//!
//! - relais cut from the broker for 30 s (`RELAIS_PARTITION_SECONDS` sets
//!   another length: `scripts/soak --partition 300` runs it for 5 minutes);
//! - relais cut from the mail server in the middle of a DATA.
//!
//! Each: every alert emailed once (counted at the mail server), the queues
//! empty, and the time from the heal to the next email printed.
//!
//! The servers are the test's own (a RabbitMQ node and the SMTP server,
//! listening on every address: the machine's listen on loopback only,
//! which a namespace cannot reach). Needs root and iproute2.

use relais_testkit as support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::netns::Host;
use support::rabbitmq::Node;
use support::smtp::SmtpServer;
use support::{REGISTRY, STREAM_WAIT, World, signal, wait_exit};

const ALERTS: usize = 600;
/// The host's links.
const BROKER: usize = 0;
const MAIL: usize = 1;

/// One test at a time: each cuts links and reads the time to recover.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The RabbitMQ node of this test binary, started by the first test to
/// need it: listening on every address, guest allowed from any (the host
/// reaches it through its link).
static NODE: std::sync::OnceLock<Node> = std::sync::OnceLock::new();

async fn node() -> &'static Node {
    if NODE.get().is_none() {
        let started = tokio::task::spawn_blocking(|| {
            Node::start(
                "relais-partition",
                |_, port| {
                    format!("listeners.tcp.default = 0.0.0.0:{port}\nloopback_users = none\n")
                },
                "[].",
            )
        })
        .await
        .unwrap();
        let _ = NODE.set(started);
    }
    NODE.get().unwrap()
}

/// The links are the test's own, between two namespaces of one machine:
/// in clear, as a trusted network.
const IN_CLEAR: [(&str, &str); 2] = [
    ("RELAIS__AMQP__ALLOW_PLAINTEXT", "true"),
    ("RELAIS__SMTP__ALLOW_PLAINTEXT", "true"),
];

/// A relais on `host`, the world's alerts published, and the SMTP server
/// answering in 5 ms.
async fn world_on(host: &Host, node: &Node) -> World {
    let smtp = SmtpServer::start_on_every_address().await;
    smtp.set_latency(Duration::from_millis(5));
    let world = World::on_brokers_with_server(
        REGISTRY,
        &[node.url_at(host.links[BROKER].machine)],
        &node.url(),
        smtp,
        &IN_CLEAR,
        None,
    )
    .await;
    // A failed attempt waits for the link to heal: 5 s, 10 s, 20 s.
    world.set_retry_delays(&["5s", "10s", "20s"]);
    world.publish_stream("PART", ALERTS).await;
    world
}

/// relais started on `host`, its world's alerts published: the world, the
/// process, and its logs.
async fn relais_on(host: &Host) -> (World, std::process::Child, support::Logs) {
    let world = world_on(host, node().await).await;
    let smtp_host = host.links[MAIL].machine.to_string();
    let smtp_port = world.smtp.port().to_string();
    let mut relais = world.spawn_binary_on(
        host,
        &[
            ("RELAIS__SMTP__HOST", &smtp_host),
            ("RELAIS__SMTP__PORT", &smtp_port),
        ],
    );
    let logs = support::Logs::collect(&mut relais);
    (world, relais, logs)
}

/// Each alert's number of emails, and those emailed twice.
fn per_alert(mails: &[support::smtp::Mail]) -> (usize, Vec<String>) {
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    for mail in mails {
        *counted.entry(mail.alert_id()).or_default() += 1;
    }
    let twice = counted
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| format!("{id} ({n})"))
        .collect();
    (counted.len(), twice)
}

/// The time from `healed` to the first email accepted after it.
fn recovery(mails: &[support::smtp::Mail], healed: Instant) -> Duration {
    mails
        .iter()
        .map(|mail| mail.at)
        .filter(|at| *at > healed)
        .min()
        .map_or(Duration::MAX, |at| at.duration_since(healed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relais_cut_from_the_broker_and_healed_emails_every_alert_once() {
    let _turn = TURN.lock().await;
    let seconds: u64 = std::env::var("RELAIS_PARTITION_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(30);
    let host = Host::new(2);
    let (world, mut relais, logs) = relais_on(&host).await;

    // Act: the broker's link cut once 200 alerts are emailed, for
    // `seconds`, then healed.
    world.smtp.wait_for(200, STREAM_WAIT).await;
    host.cut(BROKER);
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let during = world.smtp.count();
    host.heal(BROKER);
    let healed = Instant::now();
    let all = world.smtp.wait_for(ALERTS, STREAM_WAIT).await;
    let after = world
        .smtp
        .wait_for(ALERTS + 1, Duration::from_secs(3))
        .await;
    let left = world.wait_for_depth(&world.queue, 0, STREAM_WAIT).await;
    signal(&relais, "TERM");
    wait_exit(&mut relais, Duration::from_secs(30)).await;

    // Assert
    let (alerts, twice) = per_alert(&after);
    eprintln!(
        "partition: broker cut {seconds} s; {during} of {ALERTS} emailed at the heal; \
         next email {:.2} s after the heal; all {} s after the cut",
        recovery(&after, healed).as_secs_f64(),
        cut.elapsed().as_secs()
    );
    assert_eq!(all.len(), ALERTS, "relais's logs:\n{}", logs.all());
    assert!(twice.is_empty(), "emailed twice: {twice:?}");
    assert_eq!((after.len(), alerts), (ALERTS, ALERTS));
    assert_eq!(left, 0);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relais_cut_from_the_mail_server_in_the_middle_of_a_data_emails_every_alert_once() {
    let _turn = TURN.lock().await;
    let host = Host::new(2);
    let (world, mut relais, logs) = relais_on(&host).await;

    // Act: the server holds its answers to the ends of DATA; the link to
    // it is cut with those in flight; the server then drops them unanswered
    // (as a server does whose client went silent), and the link heals 10 s
    // later.
    world.smtp.wait_for(200, STREAM_WAIT).await;
    let held = world.smtp.hold_in_flight().await;
    host.cut(MAIL);
    world.smtp.drop_held();
    tokio::time::sleep(Duration::from_secs(10)).await;
    host.heal(MAIL);
    let healed = Instant::now();
    let all = world.smtp.wait_for(ALERTS, STREAM_WAIT).await;
    let after = world
        .smtp
        .wait_for(ALERTS + 1, Duration::from_secs(3))
        .await;
    let left = world.wait_for_depth(&world.queue, 0, STREAM_WAIT).await;
    signal(&relais, "TERM");
    wait_exit(&mut relais, Duration::from_secs(30)).await;

    // Assert
    let (alerts, twice) = per_alert(&after);
    eprintln!(
        "partition: mail server cut with {held} emails in DATA; next email {:.2} s after the heal",
        recovery(&after, healed).as_secs_f64()
    );
    assert!(held > 0, "emails were in the middle of DATA at the cut");
    assert_eq!(all.len(), ALERTS, "relais's logs:\n{}", logs.all());
    assert!(twice.is_empty(), "emailed twice: {twice:?}");
    assert_eq!((after.len(), alerts), (ALERTS, ALERTS));
    assert_eq!(left, 0);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_relais_cut_from_postgresql_stops_sending_before_the_standby_takes_over() {
    const STORE: usize = 2;
    let _turn = TURN.lock().await;
    let node = node().await;
    // Two hosts, each with a link to the broker, the mail server and the
    // store; PostgreSQL of the test's own, over TLS (relais wants it to a
    // database that is not on its own machine), one certificate for the
    // machine's address on either host's store link.
    let hosts = [Host::new(3), Host::new(3)];
    let names: Vec<String> = hosts
        .iter()
        .map(|host| host.links[STORE].machine.to_string())
        .collect();
    let ca = support::TestCa::new(&["localhost"]);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (cert, key) = ca.issue(&names, names[0]);
    let postgres = tokio::task::spawn_blocking(move || {
        support::postgres::Server::with_tls_for_hosts(&cert, &key)
    })
    .await
    .unwrap();
    let smtp = SmtpServer::start_on_every_address().await;
    smtp.set_latency(Duration::from_millis(5));
    let urls: Vec<String> = hosts
        .iter()
        .map(|host| node.url_at(host.links[BROKER].machine))
        .collect();
    let world = World::on_brokers_with_server(
        REGISTRY,
        &urls,
        &node.url(),
        smtp,
        &IN_CLEAR,
        Some(format!("postgres://postgres@127.0.0.1:{}", postgres.port)),
    )
    .await;
    world.set_retry_delays(&["5s", "10s", "20s"]);
    let ca_file = world.dir.path().join("postgres-ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let database = world.database.as_ref().unwrap().1.clone();
    world.publish_stream("PART-PG", 1000).await;
    let http = SmtpServer::free_port().await;
    let spawn = |host: &Host| {
        let store = postgres.url_at(host.links[STORE].machine, &database);
        let listen = format!("{}:{http}", host.links[MAIL].host);
        world.spawn_binary_on(
            host,
            &[
                ("RELAIS__SMTP__HOST", &host.links[MAIL].machine.to_string()),
                ("RELAIS__SMTP__PORT", &world.smtp.port().to_string()),
                ("RELAIS__STORE__URL", &store),
                ("RELAIS__STORE__CA_FILE", ca_file.to_str().unwrap()),
                ("RELAIS__HTTP__LISTEN", &listen),
            ],
        )
    };
    let role = |n: usize, role: &'static str| {
        support::wait_for_role_at(hosts[n].links[MAIL].host, http, role)
    };
    let mut a = spawn(&hosts[0]);
    let logs_a = support::Logs::collect(&mut a);
    assert_eq!(role(0, "active").await, "active", "{}", logs_a.all());
    let mut b = spawn(&hosts[1]);
    let logs_b = support::Logs::collect(&mut b);
    assert_eq!(role(1, "standby").await, "standby", "{}", logs_b.all());

    // Act: A's link to PostgreSQL cut once 300 alerts are emailed; B
    // takes over; A's link heals once B is done.
    world.smtp.wait_for(300, STREAM_WAIT).await;
    hosts[0].cut(STORE);
    let cut = Instant::now();
    let took_over = role(1, "active").await;
    let all = world.smtp.wait_for(1000, STREAM_WAIT).await;
    hosts[0].heal(STORE);
    let back = role(0, "standby").await;
    let after = world.smtp.wait_for(1001, Duration::from_secs(3)).await;
    let left = world.wait_for_depth(&world.queue, 0, STREAM_WAIT).await;
    for relais in [&a, &b] {
        signal(relais, "TERM");
    }
    wait_exit(&mut a, Duration::from_secs(30)).await;
    wait_exit(&mut b, Duration::from_secs(30)).await;

    // Assert: A's last email before B's first; each alert once.
    let from = |n: usize| {
        let address = std::net::IpAddr::V4(hosts[n].links[MAIL].host);
        after
            .iter()
            .filter(move |mail| mail.peer == Some(address))
            .map(|mail| mail.at)
    };
    let a_last = from(0).max().expect("A emailed");
    let b_first = from(1).min().expect("B emailed");
    eprintln!(
        "partition: A cut from PostgreSQL; A's last email {:.2} s after the cut, \
         B's first {:.2} s after it",
        a_last.saturating_duration_since(cut).as_secs_f64(),
        b_first.saturating_duration_since(cut).as_secs_f64()
    );
    assert_eq!(
        (took_over.as_str(), back.as_str()),
        ("active", "standby"),
        "A's logs:\n{}\nB's logs:\n{}",
        logs_a.all(),
        logs_b.all()
    );
    assert!(
        a_last < b_first,
        "A still sent {:?} after B's first email",
        a_last.duration_since(b_first)
    );
    // A second copy is RFC 1047's window only for an alert whose first
    // copy A sent and then could not record (the store cut): A says so.
    let unrecorded: std::collections::BTreeSet<String> = logs_a
        .all()
        .lines()
        .filter(|line| line.contains("email sent but not recorded in the store"))
        .filter_map(|line| line.split("alert_id=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let (alerts, twice) = per_alert(&after);
    let outside: Vec<_> = twice
        .iter()
        .filter(|id| !unrecorded.contains(id.split(' ').next().unwrap()))
        .collect();
    eprintln!(
        "partition: {} emailed twice, each sent by A and then not recordable (RFC 1047's window)",
        twice.len()
    );
    assert!(all.len() >= 1000);
    assert!(
        outside.is_empty(),
        "emailed twice outside the window: {outside:?}\nA's logs:\n{}\nB's logs:\n{}",
        logs_a.all(),
        logs_b.all()
    );
    assert_eq!(alerts, 1000);
    assert_eq!(after.len(), 1000 + twice.len());
    assert_eq!(left, 0);
    assert_eq!(world.broker.depth(&world.dead()).await, 0);
    world.cleanup().await;
}
