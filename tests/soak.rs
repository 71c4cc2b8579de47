//! The chaos soak: faults at random moments, overlapping, for as long as
//! asked, and then the count.
//!
//! The deployment's shape: a three-node RabbitMQ cluster of the test's own,
//! two relais (active and standby) on one PostgreSQL store, and a mail
//! server that sometimes stalls or refuses. A publisher sends a steady
//! stream of alerts of mixed kinds and territories (20 a second unless
//! told), confirmed, moving to another node when its own stops, as a
//! dispatch software does. Meanwhile a chaos loop picks, at random moments,
//! one of: SIGKILL, SIGSTOP (then SIGCONT) or SIGTERM of a relais, a broker
//! node stopped then started, PostgreSQL restarted, the mail server
//! stalling past `smtp.timeout` or refusing with 421, a registry reload.
//! Each lasts a few seconds, so they overlap.
//!
//! Then everything heals, and the soak counts. It fails on any breach:
//! - an alert lost: some référent of it never emailed, and the alert not in
//!   `.dead` either;
//! - an email sent twice outside RFC 1047's window (a relais killed, frozen
//!   or cut from its store between the server's "250" and its record of
//!   it: that window is counted and printed, not a breach);
//! - a queue left with messages;
//! - a relais that does not answer `/readyz` at the end, or does not stop
//!   on SIGTERM within its `shutdown_timeout` (during the soak or at the end).
//!
//! `RELAIS_SOAK_MINUTES` (default 2, CI's short run), `RELAIS_SOAK_RATE`
//! (alerts a second, default 20) and `RELAIS_SOAK_SEED` (to replay a run's
//! choices) set it; `scripts/soak --minutes N` runs it. The relais' logs are
//! kept in `target/soak/` (named in the report). It restarts the machine's
//! PostgreSQL: it runs alone, as its own test binary.

use relais_testkit as support;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::rabbitmq::Cluster;
use support::smtp::Fault;
use support::{Broker, REGISTRY, World, signal, wait_for_role};

/// What each alert of the soak must reach: its kind, its commune, and the
/// addresses of its référents (from [`REGISTRY`]).
const SHAPES: &[(&str, &str, &[&str])] = &[
    (
        "orientation_sociale",
        "75113",
        &[
            "camille.martin@ccas-paris13.test",
            "accueil@ccas-paris13.test",
        ],
    ),
    ("orientation_sociale", "75115", &["social@paris.test"]),
    ("orientation_sociale", "2A004", &["ccas@ajaccio.test"]),
    (
        "acces_aux_droits",
        "75115",
        &["referent@cpam-paris.test", "referent@caf-paris.test"],
    ),
];

/// relais's `shutdown_timeout` in the soak's settings (the tests' world).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a relais may take to exit after SIGTERM: its
/// `shutdown_timeout`, and a little for the process to end.
const STOP_WITHIN: Duration = SHUTDOWN_TIMEOUT.saturating_add(Duration::from_secs(5));
/// How long the count waits, once everything has healed, for the last
/// alerts (the retry ladder's longest wait is 20 s).
const SETTLE: Duration = Duration::from_secs(240);

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64: the soak's choices, replayable from the seed it prints.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A duration between `low` and `high` seconds.
    fn seconds(&mut self, low: f64, high: f64) -> Duration {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(low + unit * (high - low))
    }
}

/// The faults the chaos loop picks from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Kill,
    Freeze,
    Term,
    BrokerNode,
    Postgres,
    SmtpStall,
    SmtpRefuse,
    Reload,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Kill,
        Kind::Freeze,
        Kind::Term,
        Kind::BrokerNode,
        Kind::Postgres,
        Kind::SmtpStall,
        Kind::SmtpRefuse,
        Kind::Reload,
    ];

    /// Whether a duplicate whose first copy was accepted near this fault
    /// is RFC 1047's window (the sender could not record the "250").
    fn opens_the_window(self) -> bool {
        matches!(self, Kind::Kill | Kind::Freeze | Kind::Postgres)
    }
}

/// One fault as it happened.
struct Happened {
    kind: Kind,
    at: Instant,
    healed: Option<Instant>,
}

/// One relais of the pair, restarted as often as the chaos kills it.
struct Relais {
    name: &'static str,
    port: u16,
    child: Option<Child>,
    starts: usize,
    frozen: bool,
    /// When it was sent SIGTERM, while it has not exited yet.
    terminating: Option<Instant>,
    /// When to start it again, once it is down.
    restart_at: Option<Instant>,
}

impl Relais {
    /// Not started yet, with a port of its own for `/readyz`.
    async fn new(name: &'static str) -> Self {
        Self {
            name,
            port: support::smtp::SmtpServer::free_port().await,
            child: None,
            starts: 0,
            frozen: false,
            terminating: None,
            restart_at: None,
        }
    }

    fn start(&mut self, world: &World, logs: &std::path::Path) {
        let listen = format!("127.0.0.1:{}", self.port);
        let mut child = world.spawn_binary_with(&[("RELAIS__HTTP__LISTEN", &listen)]);
        self.starts += 1;
        let path = logs.join(format!("{}-{}.log", self.name, self.starts));
        let mut stderr = child.stderr.take().expect("stderr is piped");
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(path).expect("the soak's log file");
            let _ = std::io::copy(&mut stderr, &mut file);
        });
        self.child = Some(child);
        self.frozen = false;
        self.terminating = None;
        self.restart_at = None;
    }

    /// Running, not frozen, not stopping: a fault may pick it.
    fn healthy(&self) -> bool {
        self.child.is_some() && !self.frozen && self.terminating.is_none()
    }

    /// What `/readyz` says its role is; `None` when nothing answers within
    /// 2 s (a frozen relais's socket accepts, and then says nothing).
    async fn role(&self) -> Option<String> {
        let asked = support::http_get(self.port, "/readyz");
        let (status, body) = tokio::time::timeout(Duration::from_secs(2), asked)
            .await
            .ok()?;
        if status == 0 {
            return None;
        }
        let readiness: serde_json::Value = serde_json::from_str(&body).ok()?;
        readiness["role"].as_str().map(str::to_owned)
    }

    /// Waits, from `asked` (its SIGTERM), until it exits, at most
    /// [`STOP_WITHIN`]; past that, it is a breach, and it is killed. It is
    /// down afterwards.
    async fn stopped(&mut self, asked: Instant, breaches: &mut Vec<String>) {
        while !self.exited() && asked.elapsed() < STOP_WITHIN {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !self.exited() {
            breaches.push(format!(
                "relais {} did not stop within {SHUTDOWN_TIMEOUT:?} of SIGTERM (its start {})",
                self.name, self.starts
            ));
            let child = self.child.as_mut().expect("running");
            signal(child, "KILL");
            let _ = child.wait();
        }
        self.child = None;
        self.terminating = None;
    }

    fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(Some(_))),
            None => true,
        }
    }
}

/// What the publisher sent, confirmed by the broker: each alert's id and
/// shape.
#[derive(Default)]
struct Published {
    alerts: Vec<(String, usize)>,
    reconnections: usize,
}

/// Publishes `rate` alerts a second until `until`, each confirmed before
/// the next; when the broker does not confirm, it connects to the next
/// node and publishes the same alert again (the dispatch software's
/// at-least-once: relais takes an alert published twice once).
async fn publish(
    urls: Vec<String>,
    exchange: String,
    rate: u32,
    until: Instant,
    published: Arc<Mutex<Published>>,
) {
    let mut node = 0;
    let mut broker: Option<Broker> = None;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut next = tokio::time::Instant::now();
    let mut n = 0usize;
    while Instant::now() < until {
        let shape = n % SHAPES.len();
        let (kind, commune, _) = SHAPES[shape];
        let id = format!("SOAK-{n:07}");
        let body = support::alert(&id, kind, commune);
        loop {
            if broker.is_none() {
                broker = Broker::try_connect_url(&urls[node % urls.len()]).await;
                node += 1;
                if broker.is_none() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                published.lock().unwrap().reconnections += 1;
            }
            let sent = tokio::time::timeout(
                Duration::from_secs(10),
                broker
                    .as_ref()
                    .expect("connected")
                    .try_publish(&exchange, kind, &body),
            )
            .await;
            match sent {
                Ok(Ok(())) => break,
                _ => broker = None,
            }
        }
        published.lock().unwrap().alerts.push((id, shape));
        n += 1;
        next += period;
        tokio::time::sleep_until(next).await;
    }
}

/// A connection to any node that answers.
async fn any_node(cluster: &Cluster) -> Broker {
    loop {
        for url in cluster.urls() {
            if let Some(broker) = Broker::try_connect_url(&url).await {
                return broker;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaos_soak_loses_nothing_and_doubles_nothing_outside_rfc_1047s_window() {
    let minutes: f64 = setting("RELAIS_SOAK_MINUTES", 2.0);
    let rate: u32 = setting("RELAIS_SOAK_RATE", 20);
    let seed: u64 = setting(
        "RELAIS_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let mut dice = Dice(seed);
    let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("..")
        .join("soak")
        .join(seed.to_string());
    std::fs::create_dir_all(&logs).unwrap();
    let logs = logs.canonicalize().unwrap();
    eprintln!(
        "soak: {minutes} min at {rate} alerts/s, seed {seed}, logs in {}",
        logs.display()
    );

    // Arrange: the cluster, the store, the mail server, the pair.
    let cluster = tokio::task::spawn_blocking(|| Cluster::start("relais-soak", 3))
        .await
        .unwrap();
    let world = World::on_cluster_with_store(
        REGISTRY,
        &cluster.urls(),
        &[],
        Some(support::postgres::server()),
    )
    .await;
    world.set_retry_delays(&["1s", "5s", "20s"]);
    world.smtp.keep_headers_only();
    world.smtp.set_latency(Duration::from_millis(2));
    let mut pair = [Relais::new("a").await, Relais::new("b").await];
    pair[0].start(&world, &logs);
    assert_eq!(wait_for_role(pair[0].port, "active").await, "active");
    pair[1].start(&world, &logs);
    assert_eq!(wait_for_role(pair[1].port, "standby").await, "standby");

    // Act: the stream, and the chaos beside it.
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(minutes * 60.0);
    let published = Arc::new(Mutex::new(Published::default()));
    let publisher = tokio::spawn(publish(
        cluster.urls(),
        world.exchange.clone(),
        rate,
        until,
        Arc::clone(&published),
    ));
    let mut faults: Vec<Happened> = Vec::new();
    let mut breaches: Vec<String> = Vec::new();
    let mut stopped_node: Option<(usize, Instant, usize)> = None;
    let mut thawing: Vec<(usize, Instant, usize)> = Vec::new();
    let mut next_fault = Instant::now() + dice.seconds(2.0, 6.0);
    while Instant::now() < until {
        let now = Instant::now();
        // Heal what is due.
        if let Some((node, at, fault)) = stopped_node
            && now >= at
        {
            tokio::task::block_in_place(|| cluster.nodes[node].start_app());
            faults[fault].healed = Some(Instant::now());
            stopped_node = None;
        }
        thawing.retain(|&(which, at, fault)| {
            if now < at {
                return true;
            }
            signal(pair[which].child.as_ref().unwrap(), "CONT");
            pair[which].frozen = false;
            faults[fault].healed = Some(now);
            false
        });
        for relais in &mut pair {
            if let Some(asked) = relais.terminating
                && (relais.exited() || asked.elapsed() >= STOP_WITHIN)
            {
                relais.stopped(asked, &mut breaches).await;
                relais.restart_at = Some(now + Duration::from_secs(1));
            }
            if relais.child.is_none() && relais.restart_at.is_some_and(|at| now >= at) {
                relais.start(&world, &logs);
            }
        }
        for fault in &mut faults {
            if fault.healed.is_none()
                && matches!(fault.kind, Kind::Kill | Kind::Term)
                && pair.iter().all(|relais| relais.child.is_some())
            {
                fault.healed = Some(now);
            }
        }

        // A new fault, now and then.
        if now >= next_fault {
            next_fault = now + dice.seconds(1.0, 6.0);
            let kind = Kind::ALL[dice.below(Kind::ALL.len())];
            let index = faults.len();
            let mut healed = None;
            match kind {
                Kind::Kill | Kind::Freeze | Kind::Term | Kind::Reload => {
                    let candidates: Vec<usize> = (0..2).filter(|&n| pair[n].healthy()).collect();
                    if candidates.is_empty() {
                        continue;
                    }
                    // Kill and freeze aim at the active one, when one is.
                    let mut active = None;
                    for &n in &candidates {
                        if pair[n].role().await.as_deref() == Some("active") {
                            active = Some(n);
                        }
                    }
                    let which = match (kind, active) {
                        (Kind::Kill | Kind::Freeze, Some(active)) => active,
                        _ => candidates[dice.below(candidates.len())],
                    };
                    let relais = &mut pair[which];
                    let child = relais.child.as_ref().unwrap();
                    match kind {
                        Kind::Kill => {
                            signal(child, "KILL");
                            let _ = relais.child.take().unwrap().wait();
                            relais.restart_at = Some(now + dice.seconds(1.0, 5.0));
                        }
                        Kind::Freeze => {
                            signal(child, "STOP");
                            relais.frozen = true;
                            thawing.push((which, now + dice.seconds(2.0, 15.0), index));
                        }
                        Kind::Term => {
                            signal(child, "TERM");
                            relais.terminating = Some(now);
                        }
                        _ => {
                            signal(child, "HUP");
                            healed = Some(now);
                        }
                    }
                }
                Kind::BrokerNode => {
                    if stopped_node.is_some() {
                        continue;
                    }
                    let node = dice.below(cluster.nodes.len());
                    tokio::task::block_in_place(|| cluster.nodes[node].stop_app());
                    stopped_node = Some((node, now + dice.seconds(3.0, 15.0), index));
                }
                Kind::Postgres => {
                    tokio::task::block_in_place(support::postgres::restart);
                    healed = Some(Instant::now());
                }
                Kind::SmtpStall => {
                    // Past smtp.timeout (2 s): relais gives up on them.
                    let count = 1 + dice.below(6);
                    world
                        .smtp
                        .fail_next(count, Fault::Stall(Duration::from_secs(3)));
                    healed = Some(now);
                }
                Kind::SmtpRefuse => {
                    let count = 5 + dice.below(40);
                    world
                        .smtp
                        .fail_next(count, Fault::Reply(421, "4.3.2 service not available"));
                    healed = Some(now);
                }
            }
            faults.push(Happened {
                kind,
                at: now,
                healed,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher.await.unwrap();

    // Heal everything: the node, the frozen, the stopped; the mail server.
    let chaos_ended = Instant::now();
    if let Some((node, _, fault)) = stopped_node.take() {
        tokio::task::block_in_place(|| cluster.nodes[node].start_app());
        faults[fault].healed = Some(Instant::now());
    }
    for (which, _, fault) in thawing.drain(..) {
        signal(pair[which].child.as_ref().unwrap(), "CONT");
        pair[which].frozen = false;
        faults[fault].healed = Some(Instant::now());
    }
    world.smtp.heal();
    for relais in &mut pair {
        if let Some(asked) = relais.terminating {
            relais.stopped(asked, &mut breaches).await;
        }
        if relais.child.is_none() {
            relais.start(&world, &logs);
        }
    }
    for fault in &mut faults {
        fault.healed.get_or_insert(chaos_ended);
    }

    // Wait until every alert is in one of its two places.
    let published = std::mem::take(&mut *published.lock().unwrap());
    let expected: usize = published
        .alerts
        .iter()
        .map(|(_, shape)| SHAPES[*shape].2.len())
        .sum();
    let inspect = any_node(&cluster).await;
    let mut dead: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + SETTLE;
    loop {
        for letter in inspect.take_all(&world.dead()).await {
            let alert: serde_json::Value = serde_json::from_slice(&letter.body).unwrap_or_default();
            dead.insert(
                alert["id"].as_str().unwrap_or("?").to_owned(),
                letter.header("x-relais-reason").unwrap_or_default(),
            );
        }
        let emailed: HashSet<(String, String)> = world
            .smtp
            .mails()
            .iter()
            .flat_map(|mail| {
                let alert = mail.alert_id();
                mail.to.iter().map(move |to| (alert.clone(), to.clone()))
            })
            .collect();
        let missing = published
            .alerts
            .iter()
            .filter(|(id, shape)| {
                !dead.contains_key(id)
                    && SHAPES[*shape]
                        .2
                        .iter()
                        .any(|to| !emailed.contains(&(id.clone(), (*to).to_owned())))
            })
            .count();
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Late copies, if any, have a few seconds to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = chaos_ended.elapsed();

    // Assert: the count.
    let mails = world.smtp.mails();
    let mut per_email: BTreeMap<(String, String), Vec<Instant>> = BTreeMap::new();
    for mail in &mails {
        for to in &mail.to {
            per_email
                .entry((mail.alert_id(), to.clone()))
                .or_default()
                .push(mail.at);
        }
    }
    let known: HashSet<&str> = published.alerts.iter().map(|(id, _)| id.as_str()).collect();
    let mut lost = Vec::new();
    let mut partly_dead = Vec::new();
    for (id, shape) in &published.alerts {
        let reached = SHAPES[*shape]
            .2
            .iter()
            .filter(|to| per_email.contains_key(&(id.clone(), (**to).to_owned())))
            .count();
        match (reached == SHAPES[*shape].2.len(), dead.contains_key(id)) {
            (true, false) => {}
            (false, true) => {}
            (true, true) => partly_dead.push(id.clone()),
            (false, false) => lost.push(id.clone()),
        }
    }
    let strangers: Vec<_> = per_email
        .keys()
        .filter(|(id, _)| !known.contains(id.as_str()))
        .collect();
    let mut in_window = BTreeMap::<Kind, usize>::new();
    let mut doubled = Vec::new();
    for ((id, to), at) in &per_email {
        if at.len() < 2 {
            continue;
        }
        let first = at.iter().min().unwrap();
        let window = faults.iter().find(|fault| {
            fault.kind.opens_the_window()
                && *first + Duration::from_secs(2) >= fault.at
                && *first <= fault.healed.unwrap() + Duration::from_secs(2)
        });
        match window {
            Some(fault) => *in_window.entry(fault.kind).or_default() += at.len() - 1,
            None => doubled.push(format!("{id} to {to}: {} copies", at.len())),
        }
    }
    for relais in &pair {
        if relais.role().await.is_none() {
            breaches.push(format!("relais {} does not answer /readyz", relais.name));
        }
    }
    let topology = relais::amqp::Topology::new(&world.settings());
    for queue in topology.queues() {
        let depth = inspect.depth(queue).await;
        if depth != 0 {
            breaches.push(format!("{queue} holds {depth} messages"));
        }
    }
    for relais in &mut pair {
        signal(relais.child.as_ref().unwrap(), "TERM");
        relais.stopped(Instant::now(), &mut breaches).await;
    }

    // The figures.
    let mut per_kind = BTreeMap::<Kind, (usize, Vec<Duration>)>::new();
    let mut accepted: Vec<Instant> = mails.iter().map(|mail| mail.at).collect();
    accepted.sort();
    for fault in &faults {
        let entry = per_kind.entry(fault.kind).or_default();
        entry.0 += 1;
        let healed = fault.healed.unwrap();
        let next = accepted.partition_point(|at| *at <= healed);
        if let Some(at) = accepted.get(next) {
            entry.1.push(at.duration_since(healed));
        }
    }
    let mut report = format!(
        "soak: {:.1} min of chaos, seed {seed}, logs in {}\n\
         alerts published: {} ({} publisher reconnections); emails expected: {expected}, accepted: {}\n\
         lost: {}; in .dead: {} ({:?}); both emailed and in .dead: {}; emails for unknown alerts: {}\n\
         emailed twice outside RFC 1047's window: {}; inside it: {:?}\n\
         settled {:.1} s after the chaos ended\n\
         faults (count, then time from each one's end to the next email: median, max):\n",
        started.elapsed().as_secs_f64() / 60.0 - settled.as_secs_f64() / 60.0,
        logs.display(),
        published.alerts.len(),
        published.reconnections,
        mails.len(),
        lost.len(),
        dead.len(),
        dead.values().collect::<HashSet<_>>(),
        partly_dead.len(),
        strangers.len(),
        doubled.len(),
        in_window,
        settled.as_secs_f64(),
    );
    for (kind, (count, mut recoveries)) in per_kind {
        recoveries.sort();
        let median = recoveries
            .get(recoveries.len() / 2)
            .copied()
            .unwrap_or_default();
        let max = recoveries.last().copied().unwrap_or_default();
        report.push_str(&format!(
            "  {kind:?}: {count}, {:.2} s, {:.2} s\n",
            median.as_secs_f64(),
            max.as_secs_f64()
        ));
    }
    eprintln!("{report}");
    std::fs::write(logs.join("report.txt"), &report).unwrap();
    world.cleanup().await;

    assert!(lost.is_empty(), "lost: {lost:?}\n{report}");
    assert!(doubled.is_empty(), "emailed twice: {doubled:?}\n{report}");
    assert!(
        partly_dead.is_empty(),
        "both emailed and dead: {partly_dead:?}\n{report}"
    );
    assert!(strangers.is_empty(), "{report}");
    assert!(breaches.is_empty(), "{breaches:?}\n{report}");
}
