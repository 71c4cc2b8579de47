//! The chaos soak: faults at random moments, overlapping, for as long as
//! asked, and then the count.
//!
//! The deployment's shape: a three-node RabbitMQ cluster of the test's own,
//! two relais (active and standby) on one PostgreSQL store, sending through
//! a real Postfix whose content filter is sometimes slow (a delay policy
//! on the end of DATA, where a before-queue filter holds the reply), which
//! relays to a test server that counts. Acknowledgement links are on, and
//! a client clicks those of half the escalating alerts; the others climb
//! to the network's fallback référent after a short wait. A publisher
//! sends a steady stream of alerts of mixed kinds and territories (20 a
//! second unless told), confirmed, moving to another node when its own
//! stops, as a dispatch software does. Meanwhile a chaos loop picks, at
//! random moments, one of: SIGKILL, SIGSTOP (then SIGCONT) or SIGTERM of a
//! relais, a broker node stopped then started, PostgreSQL restarted,
//! Postfix stopped then started, its filter slow or stalling past
//! `smtp.final_reply_timeout`, its next hop refusing with 421, a registry
//! reload. Each lasts a few seconds, so they overlap.
//!
//! Then everything heals, and the soak counts. It fails on any breach:
//! - an alert lost: some référent of it never emailed, and the alert not in
//!   `.dead` either; or both emailed and in `.dead` outside RFC 1047's
//!   window (inside it, Postfix took an email relais thought failed);
//! - an escalation lost (an alert nobody acknowledged whose fallback
//!   référent was never emailed) or made though the alert was acknowledged
//!   well before its wait ran out;
//! - an email sent twice outside RFC 1047's window (a relais killed, frozen
//!   or cut from its store, or Postfix stopped or stalling, between the
//!   server's "250" and the sender's record of it: that window is counted
//!   and printed, not a breach);
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::mta::Mta;
use support::rabbitmq::Cluster;
use support::smtp::{Fault, Mail, SmtpServer};
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

/// How long an `orientation_sociale` alert waits for an acknowledgement
/// before it climbs to the fallback référent.
const ESCALATE_AFTER: Duration = Duration::from_secs(20);

/// The fallback référent of the `ccas` network, who receives the alerts
/// nobody acknowledged.
const FALLBACK: &str = "permanence@paris.test";

/// [`REGISTRY`], its `orientation_sociale` alerts escalating after
/// [`ESCALATE_AFTER`] to [`FALLBACK`].
fn registry() -> String {
    let label = "label = \"Orientation sociale\"\n";
    assert!(REGISTRY.contains(label));
    let escalating = REGISTRY.replacen(
        label,
        &format!(
            "{label}escalate_after = {{ urgent = \"{}s\" }}\n",
            ESCALATE_AFTER.as_secs()
        ),
        1,
    );
    format!(
        r#"{escalating}
[[referent]]
id = "ccas-permanence"
network = "ccas"
organisation = "CCAS de Paris, permanence"
email = "{FALLBACK}"
fallback = true
"#
    )
}

/// Whether the alert escalates when nobody acknowledges it.
fn escalates(shape: usize) -> bool {
    SHAPES[shape].0 == "orientation_sociale"
}

/// Whether the client acknowledges the `n`th alert: every other round of
/// the shapes, the escalating ones.
fn clicked(n: usize) -> bool {
    escalates(n % SHAPES.len()) && (n / SHAPES.len()).is_multiple_of(2)
}

fn alert_id(n: usize) -> String {
    format!("SOAK-{n:07}")
}

fn alert_number(id: &str) -> Option<usize> {
    id.strip_prefix("SOAK-")?.parse().ok()
}

/// relais's `shutdown_timeout` in the soak's settings (the tests' world).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a relais may take to exit after SIGTERM: its
/// `shutdown_timeout`, and a little for the process to end.
const STOP_WITHIN: Duration = SHUTDOWN_TIMEOUT.saturating_add(Duration::from_secs(5));
/// How long the count waits, once everything has healed, for the last
/// alerts (the retry ladder's longest wait is 60 s) and the last
/// escalation chains (three waits).
const SETTLE: Duration = Duration::from_secs(300);
/// relais's `smtp.final_reply_timeout` in the tests' world.
const FINAL_REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How far from a fault, on Postfix's clock (whole seconds), the first
/// copy of an email sent twice may be for the window to be that fault's.
const NEAR: Duration = Duration::from_secs(3);

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
    PostfixStop,
    FilterSlow,
    FilterStall,
    NextHopRefuse,
    Reload,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::Kill,
        Kind::Freeze,
        Kind::Term,
        Kind::BrokerNode,
        Kind::Postgres,
        Kind::PostfixStop,
        Kind::FilterSlow,
        Kind::FilterStall,
        Kind::NextHopRefuse,
        Kind::Reload,
    ];

    /// Whether a duplicate whose first copy was accepted near this fault
    /// is RFC 1047's window (the sender could not record the "250": it was
    /// killed, frozen, cut from its store, or gave up waiting; or Postfix
    /// stopped between its next hop's "250" and its own record).
    fn opens_the_window(self) -> bool {
        matches!(
            self,
            Kind::Kill | Kind::Freeze | Kind::Postgres | Kind::PostfixStop | Kind::FilterStall
        )
    }
}

/// One fault as it happened.
struct Happened {
    kind: Kind,
    at: Instant,
    healed: Option<Instant>,
}

/// The soak's clock on the wall's: Postfix stamps what it accepted in
/// whole seconds of the wall clock.
struct Clocks {
    instant: Instant,
    wall: SystemTime,
}

impl Clocks {
    fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// `at` in seconds since the epoch.
    fn wall(&self, at: Instant) -> f64 {
        let wall = if at >= self.instant {
            self.wall + (at - self.instant)
        } else {
            self.wall - (self.instant - at)
        };
        wall.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
    }
}

/// One relais of the pair, restarted as often as the chaos kills it.
struct Relais {
    name: &'static str,
    port: u16,
    /// Where it serves the acknowledgement pages.
    ack_port: u16,
    child: Option<Child>,
    starts: usize,
    frozen: bool,
    /// When it was sent SIGTERM, while it has not exited yet.
    terminating: Option<Instant>,
    /// When to start it again, once it is down.
    restart_at: Option<Instant>,
}

impl Relais {
    /// Not started yet, with ports of its own for `/readyz` and the pages.
    async fn new(name: &'static str) -> Self {
        Self {
            name,
            port: SmtpServer::free_port().await,
            ack_port: SmtpServer::free_port().await,
            child: None,
            starts: 0,
            frozen: false,
            terminating: None,
            restart_at: None,
        }
    }

    fn start(&mut self, world: &World, logs: &std::path::Path) {
        let listen = format!("127.0.0.1:{}", self.port);
        let pages = format!("127.0.0.1:{}", self.ack_port);
        let mut child = world.spawn_binary_with(&[
            ("RELAIS__HTTP__LISTEN", &listen),
            ("RELAIS__ACK__LISTEN", &pages),
        ]);
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

/// One alert the broker confirmed.
struct Sent {
    id: String,
    shape: usize,
    at: Instant,
}

/// What the publisher sent.
#[derive(Default)]
struct Published {
    alerts: Vec<Sent>,
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
        let id = alert_id(n);
        let body = support::alert(&id, kind, commune);
        let first_try = Instant::now();
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
        published.lock().unwrap().alerts.push(Sent {
            id,
            shape,
            at: first_try,
        });
        n += 1;
        next += period;
        tokio::time::sleep_until(next).await;
    }
}

/// What the client did with the links.
#[derive(Default)]
struct Clicks {
    /// Each alert it acknowledged, and when the page said so.
    acknowledged: HashMap<String, Instant>,
    /// Clicks that got no "200" (relais down, frozen, or its store), tried
    /// again on the other relais and later.
    failed: usize,
}

/// A référent's click, as soon as the email comes, on the link of each
/// alert [`clicked`] says to acknowledge: a POST on the page of either
/// relais (the same link works on both), again every half second, on one
/// and then the other, until one says "200". Each click goes its own way:
/// one that waits on a frozen relais holds back no other.
async fn click(
    smtp: SmtpServer,
    pages: [u16; 2],
    until: Arc<Mutex<bool>>,
    clicks: Arc<Mutex<Clicks>>,
) {
    let mut seen = 0;
    let mut clicked_once: HashSet<String> = HashSet::new();
    let mut going = tokio::task::JoinSet::new();
    while !*until.lock().unwrap() {
        let mails = smtp.mails_after(seen);
        seen += mails.len();
        for mail in mails {
            let id = mail.alert_id();
            if !alert_number(&id).is_some_and(clicked) || mail.to == [FALLBACK] {
                continue;
            }
            let Some(path) = mail
                .link
                .as_deref()
                .and_then(|link| Some(link[link.find("/ack/")?..].to_owned()))
            else {
                continue;
            };
            if !clicked_once.insert(id.clone()) {
                continue;
            }
            let (until, clicks) = (Arc::clone(&until), Arc::clone(&clicks));
            going.spawn(async move {
                for turn in 0.. {
                    let page = pages[turn % 2];
                    let answer = tokio::time::timeout(
                        Duration::from_secs(2),
                        support::http_request(page, "POST", &path),
                    )
                    .await;
                    if matches!(answer, Ok((200, _))) {
                        let mut clicks = clicks.lock().unwrap();
                        clicks.acknowledged.insert(id, Instant::now());
                        return;
                    }
                    clicks.lock().unwrap().failed += 1;
                    if *until.lock().unwrap() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
        while going.try_join_next().is_some() {}
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    going.join_all().await;
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

/// One copy of an email, as the counting server got it from Postfix.
struct Copy {
    /// When Postfix accepted it from relais, in seconds since the epoch
    /// (its `Received:` field).
    accepted: Option<i64>,
    /// Postfix's queue id: two copies with one id are Postfix's own
    /// delivery made twice, two ids are relais's sending twice.
    queue_id: Option<String>,
    at: Instant,
}

fn copy(mail: &Mail) -> Copy {
    let parsed = mail.parsed();
    let received = parsed.received();
    Copy {
        accepted: received
            .and_then(|received| received.date)
            .map(|date| date.to_timestamp()),
        queue_id: received.and_then(|received| received.id.as_deref().map(str::to_owned)),
        at: mail.at,
    }
}

/// How many times each reason comes.
fn counted<'a>(reasons: impl Iterator<Item = &'a String>) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason.as_str()).or_default() += 1;
    }
    counts
}

/// Seconds, as their median, 90th and 99th percentiles, and maximum.
fn spread(mut seconds: Vec<f64>) -> String {
    if seconds.is_empty() {
        return "none".to_owned();
    }
    seconds.sort_by(f64::total_cmp);
    let at = |share: f64| seconds[((seconds.len() - 1) as f64 * share).round() as usize];
    format!(
        "median {:.1} s, 90% {:.1} s, 99% {:.1} s, max {:.1} s",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaos_soak_loses_nothing_and_doubles_nothing_outside_rfc_1047s_window() {
    let minutes: f64 = setting("RELAIS_SOAK_MINUTES", 2.0);
    let rate: u32 = setting("RELAIS_SOAK_RATE", 20);
    let seed: u64 = setting(
        "RELAIS_SOAK_SEED",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
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

    // Arrange: the cluster, the store, the pair with their pages, Postfix
    // in front of the counting server.
    let cluster = tokio::task::spawn_blocking(|| Cluster::start("relais-soak", 3))
        .await
        .unwrap();
    let mut pair = [Relais::new("a").await, Relais::new("b").await];
    let key = logs.join("ack-key");
    std::fs::write(&key, support::ACK_SECRET).unwrap();
    let pages = format!("127.0.0.1:{}", pair[0].ack_port);
    let public = format!("http://{pages}");
    let mut world = World::on_cluster_with_store(
        &registry(),
        &cluster.urls(),
        &[
            ("RELAIS__ACK__LISTEN", pages.as_str()),
            ("RELAIS__ACK__PUBLIC_URL", public.as_str()),
            ("RELAIS__ACK__KEY_FILE", key.to_str().unwrap()),
        ],
        Some(support::postgres::server()),
    )
    .await;
    world.set_retry_delays(&["1s", "5s", "20s", "60s"]);
    world.smtp.keep_headers_and_link("/ack/");
    world.smtp.set_latency(Duration::from_millis(2));
    let next_hop = world.smtp.port();
    let postfix: Mta =
        tokio::task::spawn_blocking(move || support::mta::postfix_relaying_to(next_hop))
            .await
            .unwrap();
    let mail_port = postfix.port("PORT_DELAY_SHORT");
    postfix.set_end_of_data_delay(mail_port, Duration::ZERO);
    world
        .env
        .push(("RELAIS__SMTP__PORT".to_owned(), mail_port.to_string()));
    pair[0].start(&world, &logs);
    assert_eq!(wait_for_role(pair[0].port, "active").await, "active");
    pair[1].start(&world, &logs);
    assert_eq!(wait_for_role(pair[1].port, "standby").await, "standby");

    // Act: the stream, the client, and the chaos beside them.
    let clocks = Clocks::now();
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
    let clicks = Arc::new(Mutex::new(Clicks::default()));
    let client_done = Arc::new(Mutex::new(false));
    let client = tokio::spawn(click(
        world.smtp.clone(),
        [pair[0].ack_port, pair[1].ack_port],
        Arc::clone(&client_done),
        Arc::clone(&clicks),
    ));
    let mut faults: Vec<Happened> = Vec::new();
    let mut breaches: Vec<String> = Vec::new();
    let mut stopped_node: Option<(usize, Instant, usize)> = None;
    let mut postfix_down: Option<(Instant, usize)> = None;
    let mut slow_filter: Option<(Instant, usize)> = None;
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
        if let Some((at, fault)) = postfix_down
            && now >= at
        {
            tokio::task::block_in_place(|| postfix.ctl("start"));
            faults[fault].healed = Some(Instant::now());
            postfix_down = None;
        }
        if let Some((at, fault)) = slow_filter
            && now >= at
        {
            postfix.set_end_of_data_delay(mail_port, Duration::ZERO);
            faults[fault].healed = Some(now);
            slow_filter = None;
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
                Kind::PostfixStop => {
                    if postfix_down.is_some() {
                        continue;
                    }
                    tokio::task::block_in_place(|| postfix.ctl("stop"));
                    postfix_down = Some((now + dice.seconds(2.0, 12.0), index));
                }
                Kind::FilterSlow | Kind::FilterStall => {
                    if slow_filter.is_some() {
                        continue;
                    }
                    // Slow: within smtp.final_reply_timeout. Stalling:
                    // past it, so relais gives up on each message.
                    let delay = match kind {
                        Kind::FilterSlow => dice.seconds(0.2, 1.0),
                        _ => FINAL_REPLY_TIMEOUT + Duration::from_secs(1),
                    };
                    postfix.set_end_of_data_delay(mail_port, delay);
                    slow_filter = Some((now + dice.seconds(2.0, 10.0), index));
                }
                Kind::NextHopRefuse => {
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

    // Heal everything: the node, the frozen, the stopped; Postfix, its
    // filter and its next hop.
    let chaos_ended = Instant::now();
    if let Some((node, _, fault)) = stopped_node.take() {
        tokio::task::block_in_place(|| cluster.nodes[node].start_app());
        faults[fault].healed = Some(Instant::now());
    }
    if let Some((_, fault)) = postfix_down.take() {
        tokio::task::block_in_place(|| postfix.ctl("start"));
        faults[fault].healed = Some(Instant::now());
    }
    if let Some((_, fault)) = slow_filter.take() {
        postfix.set_end_of_data_delay(mail_port, Duration::ZERO);
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

    // Wait until every alert is in one of its two places, every chain has
    // ended, and the queues are empty.
    let published = std::mem::take(&mut *published.lock().unwrap());
    let inspect = any_node(&cluster).await;
    let topology = relais::amqp::Topology::new(&world.settings());
    let mut queues: Vec<String> = topology.queues().map(str::to_owned).collect();
    queues.push(format!(
        "{}.escalation.{}s",
        world.queue,
        ESCALATE_AFTER.as_secs()
    ));
    // The alerts in `.dead`, with the reason; apart, the escalation steps
    // in `.dead` (a step whose emails could not be sent).
    let mut dead: BTreeMap<String, String> = BTreeMap::new();
    let mut dead_steps: BTreeMap<String, String> = BTreeMap::new();
    let deadline = Instant::now() + SETTLE;
    let mut depths: Vec<(String, u32)>;
    loop {
        for letter in inspect.take_all(&world.dead()).await {
            let alert: serde_json::Value = serde_json::from_slice(&letter.body).unwrap_or_default();
            let reason = letter.header("x-relais-reason").unwrap_or_else(|| {
                // Not relais's: the broker's (its delivery limit), as
                // `relais dead-letters list` says it.
                format!(
                    "the broker's {}",
                    letter
                        .properties
                        .headers()
                        .as_ref()
                        .and_then(relais::amqp::headers::reason)
                        .unwrap_or_default()
                )
            });
            let id = alert["id"].as_str().unwrap_or("?").to_owned();
            match letter.header("x-relais-escalation") {
                Some(step) => dead_steps.insert(id, format!("step {step}: {reason}")),
                None => dead.insert(id, reason),
            };
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
        let acknowledged: HashSet<String> = clicks
            .lock()
            .unwrap()
            .acknowledged
            .keys()
            .cloned()
            .collect();
        let missing = published
            .alerts
            .iter()
            .filter(|sent| {
                let reached = |to: &str| emailed.contains(&(sent.id.clone(), to.to_owned()));
                !dead.contains_key(&sent.id)
                    && (SHAPES[sent.shape].2.iter().any(|to| !reached(to))
                        || (escalates(sent.shape)
                            && !acknowledged.contains(&sent.id)
                            && !reached(FALLBACK)
                            && !dead_steps.contains_key(&sent.id)))
            })
            .count();
        depths = Vec::new();
        for queue in &queues {
            depths.push((queue.clone(), inspect.depth(queue).await));
        }
        let empty = depths.iter().all(|(_, depth)| *depth == 0);
        if (missing == 0 && empty) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Late copies, if any, have a few seconds to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    *client_done.lock().unwrap() = true;
    client.await.unwrap();
    let clicks = std::mem::take(&mut *clicks.lock().unwrap());
    let settled = chaos_ended.elapsed();
    for (queue, depth) in depths {
        if depth != 0 {
            breaches.push(format!("{queue} holds {depth} messages"));
        }
    }

    // Assert: the count.
    let mails = world.smtp.mails();
    let mut per_email: BTreeMap<(String, String), Vec<Copy>> = BTreeMap::new();
    for mail in &mails {
        for to in &mail.to {
            per_email
                .entry((mail.alert_id(), to.clone()))
                .or_default()
                .push(copy(mail));
        }
    }
    let known: HashSet<&str> = published
        .alerts
        .iter()
        .map(|sent| sent.id.as_str())
        .collect();
    // Which fault's window a repeat's first copy falls in, on Postfix's
    // clock.
    let window_at = |first: f64, kinds: &dyn Fn(Kind) -> bool| {
        faults
            .iter()
            .find(|fault| {
                kinds(fault.kind)
                    && first + NEAR.as_secs_f64() >= clocks.wall(fault.at)
                    && first <= clocks.wall(fault.healed.unwrap()) + NEAR.as_secs_f64()
            })
            .map(|fault| fault.kind)
    };
    // relais's copies: when Postfix took the first from relais.
    let window = |copies: &[Copy], kinds: &dyn Fn(Kind) -> bool| {
        let first = copies
            .iter()
            .map(|copy| copy.accepted.map_or(clocks.wall(copy.at), |s| s as f64))
            .fold(f64::INFINITY, f64::min);
        window_at(first, kinds)
    };
    // Postfix's own repeats: when the first reached the counting server
    // (Postfix may hold an email long before it delivers it, and a stop
    // in the middle of that delivery makes it deliver again).
    let postfix_window = |copies: &[Copy]| {
        let first = copies
            .iter()
            .map(|copy| clocks.wall(copy.at))
            .fold(f64::INFINITY, f64::min);
        window_at(first, &|kind| kind == Kind::PostfixStop)
    };
    let mut lost = Vec::new();
    let mut partly_dead = Vec::new();
    let mut emailed_and_dead_in_window = 0;
    let mut escalation_lost = Vec::new();
    let mut escalated_though_acknowledged = Vec::new();
    let (mut escalated, mut acknowledged_late) = (0, 0);
    for sent in &published.alerts {
        let reached = |to: &str| per_email.contains_key(&(sent.id.clone(), to.to_owned()));
        let referents = SHAPES[sent.shape].2;
        let all = referents.iter().all(|to| reached(to));
        match (all, dead.contains_key(&sent.id)) {
            (true, false) => {}
            (false, true) => continue,
            // Emailed, but relais did not know it: Postfix accepted the
            // email after relais gave up waiting (or could not record
            // the "250"), and the retries ran out: RFC 1047's window.
            (true, true)
                if referents.iter().any(|to| {
                    window(
                        &per_email[&(sent.id.clone(), (*to).to_owned())],
                        &Kind::opens_the_window,
                    )
                    .is_some()
                }) =>
            {
                emailed_and_dead_in_window += 1;
            }
            (true, true) => partly_dead.push(sent.id.clone()),
            (false, false) => lost.push(sent.id.clone()),
        }
        if dead.contains_key(&sent.id) {
            // In `.dead` (relais counts it as not delivered, even when
            // Postfix took an email it gave up on): its chain starts when
            // it is replayed and delivered.
            continue;
        }
        if !escalates(sent.shape) {
            if reached(FALLBACK) {
                escalated_though_acknowledged.push(format!("{} (does not escalate)", sent.id));
            }
            continue;
        }
        escalated += usize::from(reached(FALLBACK));
        // Acknowledged well before its wait could have run out (it starts
        // no sooner than the alert was published), or later.
        let early = |at: &Instant| *at + Duration::from_secs(1) < sent.at + ESCALATE_AFTER;
        match clicks.acknowledged.get(&sent.id) {
            None if !reached(FALLBACK) && !dead_steps.contains_key(&sent.id) => {
                escalation_lost.push(sent.id.clone());
            }
            Some(at) if early(at) && reached(FALLBACK) => {
                escalated_though_acknowledged.push(sent.id.clone());
            }
            Some(at) if !early(at) => acknowledged_late += 1,
            _ => {}
        }
    }
    // How long the référents waited for their email: from the alert's
    // publication to its first copy at the counting server, and the part
    // of it before Postfix took the email from relais (its `Received:`
    // date, in whole seconds).
    let (mut waited, mut before_postfix) = (Vec::new(), Vec::new());
    for sent in &published.alerts {
        for to in SHAPES[sent.shape].2 {
            let Some(copies) = per_email.get(&(sent.id.clone(), (*to).to_owned())) else {
                continue;
            };
            let Some(first) = copies.iter().min_by_key(|copy| copy.at) else {
                continue;
            };
            waited.push(first.at.saturating_duration_since(sent.at).as_secs_f64());
            if let Some(accepted) = first.accepted {
                before_postfix.push((accepted as f64 - clocks.wall(sent.at)).max(0.0));
            }
        }
    }
    let strangers: Vec<_> = per_email
        .keys()
        .filter(|(id, _)| !known.contains(id.as_str()))
        .collect();
    let mut in_window = BTreeMap::<Kind, usize>::new();
    let mut postfix_repeats = 0;
    let mut doubled = Vec::new();
    for ((id, to), copies) in &per_email {
        let sent_by_relais: HashSet<Option<&str>> =
            copies.iter().map(|copy| copy.queue_id.as_deref()).collect();
        let by_postfix = copies.len() - sent_by_relais.len();
        if by_postfix > 0 {
            postfix_repeats += by_postfix;
            if postfix_window(copies).is_none() {
                doubled.push(format!(
                    "{id} to {to}: Postfix delivered it {} times",
                    copies.len()
                ));
            }
        }
        if sent_by_relais.len() < 2 {
            continue;
        }
        match window(copies, &Kind::opens_the_window) {
            Some(kind) => *in_window.entry(kind).or_default() += sent_by_relais.len() - 1,
            None => doubled.push(format!(
                "{id} to {to}: relais sent it {} times",
                sent_by_relais.len()
            )),
        }
    }
    for relais in &pair {
        if relais.role().await.is_none() {
            breaches.push(format!("relais {} does not answer /readyz", relais.name));
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
    let expected: usize = published
        .alerts
        .iter()
        .map(|sent| SHAPES[sent.shape].2.len())
        .sum();
    let escalating = published
        .alerts
        .iter()
        .filter(|sent| escalates(sent.shape))
        .count();
    let mut report = format!(
        "soak: {:.1} min of chaos, seed {seed}, logs in {}\n\
         alerts published: {} ({} publisher reconnections); emails to référents expected: {expected}, \
         emails accepted (escalations included): {}\n\
         lost: {}; in .dead: {} ({:?}); both emailed and in .dead: {} \
         (and {emailed_and_dead_in_window} inside RFC 1047's window); emails for unknown alerts: {}\n\
         escalating alerts: {escalating}; acknowledged by the client: {} ({} of them late), \
         clicks tried again: {}; escalated to the fallback: {escalated}; \
         escalation steps in .dead: {} ({:?}); \
         escalations lost: {}; escalated though acknowledged: {}\n\
         emailed twice outside RFC 1047's window: {}; inside it: {:?}; \
         delivered twice by Postfix itself: {postfix_repeats}\n\
         from publication to the référent's first copy: {}; \
         of it, before Postfix took the email: {}\n\
         settled {:.1} s after the chaos ended\n\
         faults (count, then time from each one's end to the next email: median, max):\n",
        started.elapsed().as_secs_f64() / 60.0 - settled.as_secs_f64() / 60.0,
        logs.display(),
        published.alerts.len(),
        published.reconnections,
        mails.len(),
        lost.len(),
        dead.len(),
        counted(dead.values()),
        partly_dead.len(),
        strangers.len(),
        clicks.acknowledged.len(),
        acknowledged_late,
        clicks.failed,
        dead_steps.len(),
        counted(dead_steps.values()),
        escalation_lost.len(),
        escalated_though_acknowledged.len(),
        doubled.len(),
        in_window,
        spread(waited),
        spread(before_postfix),
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
    for doubled in doubled.iter().take(20) {
        report.push_str(&format!("  twice outside the window: {doubled}\n"));
    }
    for breach in &breaches {
        report.push_str(&format!("  breach: {breach}\n"));
    }
    eprintln!("{report}");
    std::fs::write(logs.join("report.txt"), &report).unwrap();
    world.cleanup().await;

    assert!(lost.is_empty(), "lost: {lost:?}\n{report}");
    assert!(
        escalation_lost.is_empty(),
        "escalations lost: {escalation_lost:?}\n{report}"
    );
    assert!(
        escalated_though_acknowledged.is_empty(),
        "escalated though acknowledged: {escalated_though_acknowledged:?}\n{report}"
    );
    assert!(doubled.is_empty(), "emailed twice: {doubled:?}\n{report}");
    assert!(
        partly_dead.is_empty(),
        "both emailed and dead: {partly_dead:?}\n{report}"
    );
    assert!(strangers.is_empty(), "{report}");
    assert!(breaches.is_empty(), "{breaches:?}\n{report}");
}
