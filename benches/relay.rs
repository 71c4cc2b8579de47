//! The relais benchmark: `cargo bench --bench relay`.
//!
//! Against the local RabbitMQ and the tests' SMTP server in this process
//! (`relais_testkit::smtp`, keeping headers only), with a
//! national registry (35,000 communes, three networks), it measures in one
//! run:
//!
//! 1. the registry: load and validation time, resolution time per alert;
//! 2. the broker's ceiling: a bare consumer (a subprocess that only acks) on
//!    a queue declared exactly like relais's, prefetch 32, draining N
//!    persistent messages: messages/s and CPU per message;
//! 3. relais (the release binary, a process of its own) draining N alerts:
//!    start-up to consuming, alerts/s, emails/s, CPU per alert, peak RSS;
//! 4. relais at a steady 200 alerts/s: latency from publish to SMTP accept;
//! 5. relais draining as many alerts again: its memory must not grow.
//!
//! It checks while it measures: every alert must produce exactly its
//! référents' emails, none missing, none twice; otherwise it fails. It
//! prints a table, the targets met or missed, and writes
//! `target/bench/relay.json`. Options: `--alerts N` (default 50000),
//! `--steady-seconds S` (default 15). Run by `cargo test --all-targets`
//! (as the test suite does), it makes a short run (500 alerts, 2 s) that
//! checks correctness only.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use relais::alert::Kind;
use relais::amqp::Topology;
use relais::geography::Geography;
use relais::registry::Registry;
use relais::settings::Settings;
use relais::territory::Territory;
use relais_testkit::smtp::SmtpServer;

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const PREFETCH: u16 = 32;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|a| a == "--bare-consumer") {
        let queue = args[position + 1].clone();
        let count: usize = args[position + 2].parse().expect("a count");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(bare_consumer(&queue, count));
        return;
    }
    let option = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and
    // then a short run checks that the benchmark itself works.
    let full = args.iter().any(|a| a == "--bench");
    let alerts = option("--alerts", if full { 50_000 } else { 500 });
    let steady_seconds = option("--steady-seconds", if full { 15 } else { 2 });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime.block_on(run(alerts, steady_seconds, full));
    match report {
        Ok(()) => {}
        Err(error) => {
            eprintln!("benchmark failed: {error:#}");
            std::process::exit(1);
        }
    }
}

async fn run(alerts: usize, steady_seconds: usize, full: bool) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let mut results = Vec::<(String, String)>::new();
    let mut json = serde_json::Map::new();
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        rabbitmq_version()
    );
    println!("relais benchmark: {alerts} alerts, on {machine}");
    json.insert("machine".into(), machine.into());
    json.insert("alerts".into(), alerts.into());

    // 1. The registry, as TOML (written by hand) and as JSON (generated).
    let toml_path = work.path().join("referents.toml");
    let registry_path = work.path().join("referents.json");
    let geography = relais_testkit::france();
    let communes = national_registry(&toml_path, &geography)?;
    let document: toml::Value = toml::from_str(&std::fs::read_to_string(&toml_path)?)?;
    std::fs::write(&registry_path, serde_json::to_string(&document)?)?;
    drop(document);
    let fastest = |path: &Path| -> anyhow::Result<(Duration, Registry)> {
        let mut best = (Duration::MAX, None);
        for _ in 0..3 {
            let started = Instant::now();
            let loaded = Registry::load(path, &geography)?;
            best = (best.0.min(started.elapsed()), Some(loaded));
        }
        Ok((best.0, best.1.expect("loaded")))
    };
    let (toml_load, _) = fastest(&toml_path)?;
    let (load, registry) = fastest(&registry_path)?;
    let kind = Kind::parse("orientation_sociale").map_err(anyhow::Error::msg)?;
    let territories: Vec<Territory> = communes
        .iter()
        .map(|code| geography.territory(Some(code), None).expect("a territory"))
        .collect();
    let rounds = 1_000_000;
    let started = Instant::now();
    let mut found = 0usize;
    for n in 0..rounds {
        let resolution = registry.resolve(&kind, territories[n % territories.len()]);
        found += resolution.map(|r| r.matched.len()).unwrap_or(0);
    }
    let resolve_ns = started.elapsed().as_nanos() as f64 / rounds as f64;
    assert_eq!(found, rounds, "every commune resolves");
    let referents = registry.referents().len();
    results.push((
        "registry".into(),
        format!(
            "{referents} référents, {} communes: load {:.0} ms as JSON ({:.0} ms as TOML), resolve {:.0} ns",
            communes.len(),
            ms(load),
            ms(toml_load),
            resolve_ns
        ),
    ));
    json.insert("registry_toml_load_ms".into(), ms(toml_load).into());
    json.insert("registry_referents".into(), referents.into());
    json.insert("registry_load_ms".into(), ms(load).into());
    json.insert("resolve_ns".into(), resolve_ns.into());

    // The alerts: communes in turn; half of them have two CCAS référents.
    let expected: Vec<(String, Vec<String>)> = (0..alerts)
        .map(|n| {
            let territory = territories[(n * 7919) % territories.len()];
            let resolution = registry.resolve(&kind, territory).expect("resolves");
            let referents = resolution.referents().map(|r| r.id().to_string()).collect();
            (format!("BENCH-{n:06}"), referents)
        })
        .collect();
    let bodies: Vec<Vec<u8>> = (0..alerts)
        .map(|n| alert_body(&expected[n].0, &communes[(n * 7919) % territories.len()]))
        .collect();
    let emails: usize = expected.iter().map(|(_, r)| r.len()).sum();
    println!(
        "  {emails} emails expected ({:.2} per alert)",
        emails as f64 / alerts as f64
    );

    let connection = Connection::connect(BROKER, ConnectionProperties::default()).await?;

    // 2. The ceiling: the same queue, a consumer that only acks.
    let settings_dir = work.path();
    let sink = Sink::start().await?;
    let config = write_settings(
        settings_dir,
        sink.port(),
        "bench.relais",
        "path = \"state/relais.db\"",
    )?;
    let settings = Settings::load(Some(&config))?;
    let topology = Topology::new(&settings);
    let ceiling_queue = format!("bench.ceiling.{}", std::process::id());
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(
            ceiling_queue.as_str().into(),
            options,
            topology.main_queue_arguments(),
        )
        .await?;
    publish_all(&connection, "", &ceiling_queue, &bodies).await?;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let bare = Command::new(exe)
        .args(["--bare-consumer", &ceiling_queue, &alerts.to_string()])
        .stdout(Stdio::piped())
        .output()?;
    let ceiling_wall = started.elapsed();
    let bare_report: serde_json::Value = serde_json::from_slice(&bare.stdout)?;
    let ceiling_rate = bare_report["per_second"].as_f64().unwrap_or(0.0);
    let ceiling_cpu_ms = bare_report["cpu_ms_per_message"].as_f64().unwrap_or(0.0);
    channel
        .queue_delete(ceiling_queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    results.push((
        "broker ceiling (bare consumer)".into(),
        format!("{ceiling_rate:.0} msg/s, {ceiling_cpu_ms:.3} ms CPU/msg, peak RSS {:.1} MB (process {:.1} s)", bare_report["peak_rss_mb"].as_f64().unwrap_or(0.0), ceiling_wall.as_secs_f64()),
    ));
    json.insert("ceiling".into(), bare_report.clone());

    // 3. relais draining the backlog.
    topology.declare(&channel).await?;
    publish_all(
        &connection,
        &settings.amqp.exchange,
        "orientation_sociale",
        &bodies,
    )
    .await?;
    let mut relais = Relais::start(&config)?;
    let consuming_after = relais.wait_consuming(Duration::from_secs(30))?;
    let cpu_at_start = relais.cpu()?;
    // Who uses the machine's cores while relais drains: the broker, and
    // this process (the SMTP sink; the publisher is done).
    let broker = broker_pid();
    let broker_at_start = broker.and_then(|pid| process_cpu(pid).ok());
    let sink_at_start = process_cpu(std::process::id())?;
    let drain_started = Instant::now();
    // (The high-water mark also counts the registry's parsing at start-up.)
    let sampling = RssSampler::start(relais.child.id());
    sink.wait_for(emails, Duration::from_secs(600)).await;
    let drain_rss = sampling.highest_mb();
    let drain = drain_started.elapsed();
    let cpu = relais.cpu()? - cpu_at_start;
    let cores = |used: Duration| used.as_secs_f64() / drain.as_secs_f64();
    let broker_cores = broker
        .zip(broker_at_start)
        .and_then(|(pid, at_start)| Some(cores(process_cpu(pid).ok()? - at_start)))
        .unwrap_or(f64::NAN);
    let sink_cores = cores(process_cpu(std::process::id())? - sink_at_start);
    let peak_rss = relais.peak_rss_mb()?;
    let check = sink.check(&expected);
    let drain_rate = alerts as f64 / drain.as_secs_f64();
    let cpu_ms_per_alert = cpu.as_secs_f64() * 1000.0 / alerts as f64;
    results.push((
        "relais start-up to consuming".into(),
        format!("{:.0} ms (national registry)", ms(consuming_after)),
    ));
    results.push((
        "relais drain".into(),
        format!(
            "{drain_rate:.0} alerts/s, {:.0} emails/s, {:.0}% of the ceiling, {cpu_ms_per_alert:.3} ms CPU/alert ({:.1}x the bare consumer), RSS {drain_rss:.1} MB while draining (high-water mark {peak_rss:.1} MB)",
            emails as f64 / drain.as_secs_f64(),
            100.0 * drain_rate / ceiling_rate,
            cpu_ms_per_alert / ceiling_cpu_ms
        ),
    ));
    results.push((
        "cores used while relais drains".into(),
        format!(
            "relais {:.2}, broker {broker_cores:.2}, SMTP sink {sink_cores:.2}: {:.2} of {}",
            cores(cpu),
            cores(cpu) + broker_cores + sink_cores,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
    ));
    json.insert("drain_cores_relais".into(), cores(cpu).into());
    json.insert("drain_cores_broker".into(), broker_cores.into());
    json.insert("drain_cores_sink".into(), sink_cores.into());
    json.insert("startup_ms".into(), ms(consuming_after).into());
    json.insert("drain_alerts_per_second".into(), drain_rate.into());
    json.insert(
        "drain_emails_per_second".into(),
        (emails as f64 / drain.as_secs_f64()).into(),
    );
    json.insert(
        "drain_ratio_to_ceiling".into(),
        (drain_rate / ceiling_rate).into(),
    );
    json.insert("cpu_ms_per_alert".into(), cpu_ms_per_alert.into());
    json.insert(
        "cpu_ratio_to_ceiling".into(),
        (cpu_ms_per_alert / ceiling_cpu_ms).into(),
    );
    json.insert("peak_rss_mb".into(), peak_rss.into());
    json.insert("drain_rss_mb".into(), drain_rss.into());
    if let Err(error) = check {
        relais.stop();
        anyhow::bail!("relais drain: {error}");
    }

    // 4. A steady 200 alerts/s, publish to SMTP accept.
    sink.reset();
    let rate = 200usize;
    let total = rate * steady_seconds;
    let steady: Vec<(String, Vec<String>)> = (0..total)
        .map(|n| {
            let territory = territories[(n * 104_729) % territories.len()];
            let referents = registry
                .resolve(&kind, territory)
                .expect("resolves")
                .referents()
                .map(|r| r.id().to_string())
                .collect();
            (format!("STEADY-{n:06}"), referents)
        })
        .collect();
    let steady_emails: usize = steady.iter().map(|(_, r)| r.len()).sum();
    let publisher = connection.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut published: HashMap<String, Instant> = HashMap::with_capacity(total);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate as u64));
    for (n, (id, _)) in steady.iter().enumerate() {
        tick.tick().await;
        let body = alert_body(id, &communes[(n * 104_729) % territories.len()]);
        published.insert(id.clone(), Instant::now());
        let _confirm = publisher
            .basic_publish(
                settings.amqp.exchange.as_str().into(),
                "orientation_sociale".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
    }
    publisher.wait_for_confirms().await?;
    sink.wait_for(steady_emails, Duration::from_secs(120)).await;
    let check = sink.check(&steady);
    let mut latencies: Vec<Duration> = sink
        .last_accept_per_alert()
        .into_iter()
        .filter_map(|(id, accepted)| Some(accepted.duration_since(*published.get(&id)?)))
        .collect();
    latencies.sort();
    let quantile = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let (p50, p99, max) = (
        quantile(0.5),
        quantile(0.99),
        *latencies.last().unwrap_or(&Duration::ZERO),
    );
    let steady_rss = relais.peak_rss_mb()?;
    results.push((
        format!("relais at a steady {rate} alerts/s ({steady_seconds} s)"),
        format!("publish to SMTP accept: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; peak RSS {steady_rss:.1} MB", ms(p50), ms(p99), ms(max)),
    ));
    json.insert("steady_p50_ms".into(), ms(p50).into());
    json.insert("steady_p99_ms".into(), ms(p99).into());
    json.insert("steady_max_ms".into(), ms(max).into());
    if let Err(error) = check {
        relais.stop();
        anyhow::bail!("relais at a steady rate: {error}");
    }

    // 5. The same drain again (new alert ids, published while relais
    // consumes): memory must not grow from one run to the next.
    sink.reset();
    let again: Vec<(String, Vec<String>)> = expected
        .iter()
        .enumerate()
        .map(|(n, (_, referents))| (format!("AGAIN-{n:06}"), referents.clone()))
        .collect();
    let again_bodies: Vec<Vec<u8>> = (0..alerts)
        .map(|n| alert_body(&again[n].0, &communes[(n * 7919) % territories.len()]))
        .collect();
    let sampling = RssSampler::start(relais.child.id());
    publish_all(
        &connection,
        &settings.amqp.exchange,
        "orientation_sociale",
        &again_bodies,
    )
    .await?;
    sink.wait_for(emails, Duration::from_secs(600)).await;
    let again_rss = sampling.highest_mb();
    let check = sink.check(&again);
    relais.stop();
    results.push((
        "relais draining the same again".into(),
        format!("RSS {again_rss:.1} MB while draining (first drain {drain_rss:.1} MB)"),
    ));
    json.insert("again_rss_mb".into(), again_rss.into());
    if let Err(error) = check {
        anyhow::bail!("relais draining again: {error}");
    }

    // 6. The first drain again, on a PostgreSQL store (an empty database
    // on this machine's server), same queue, same alerts.
    sink.reset();
    let server = std::env::var("RELAIS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let database =
        relais_testkit::postgres::database(&server, &format!("bench_{}", std::process::id())).await;
    let postgres_config = write_settings(
        settings_dir,
        sink.port(),
        "bench.relais",
        &format!("url = \"{server}/{database}\""),
    )?;
    publish_all(
        &connection,
        &settings.amqp.exchange,
        "orientation_sociale",
        &bodies,
    )
    .await?;
    let mut relais = Relais::start(&postgres_config)?;
    relais.wait_consuming(Duration::from_secs(30))?;
    let cpu_at_start = relais.cpu()?;
    let postgres_started = Instant::now();
    sink.wait_for(emails, Duration::from_secs(600)).await;
    let postgres_drain = postgres_started.elapsed();
    let postgres_cpu = relais.cpu()? - cpu_at_start;
    let check = sink.check(&expected);
    relais.stop();
    relais_testkit::postgres::drop_database(&server, &database).await;
    let postgres_rate = alerts as f64 / postgres_drain.as_secs_f64();
    results.push((
        "relais drain on PostgreSQL".into(),
        format!(
            "{postgres_rate:.0} alerts/s = {:.0}% of the SQLite drain, {:.3} ms CPU/alert",
            100.0 * postgres_rate / drain_rate,
            postgres_cpu.as_secs_f64() * 1000.0 / alerts as f64
        ),
    ));
    json.insert(
        "postgres_drain_alerts_per_second".into(),
        postgres_rate.into(),
    );
    if let Err(error) = check {
        anyhow::bail!("relais drain on PostgreSQL: {error}");
    }
    cleanup(&channel, &topology).await;

    // The report.
    println!();
    for (what, figure) in &results {
        println!("  {what:<42} {figure}");
    }
    println!();
    if !full {
        println!(
            "  smoke run (not a measurement: run `cargo bench --bench relay`): every alert emailed exactly as expected"
        );
        return Ok(());
    }
    let targets = [
        (
            "CPU per alert ≤ 3x the bare consumer",
            cpu_ms_per_alert <= 3.0 * ceiling_cpu_ms,
            format!("{:.1}x", cpu_ms_per_alert / ceiling_cpu_ms),
        ),
        (
            "drain ≥ 50% of the ceiling",
            drain_rate >= 0.5 * ceiling_rate,
            format!("{:.0}%", 100.0 * drain_rate / ceiling_rate),
        ),
        (
            "steady p99 ≤ 20 ms",
            ms(p99) <= 20.0,
            format!("{:.1} ms", ms(p99)),
        ),
        (
            "steady p50 ≤ 5 ms",
            ms(p50) <= 5.0,
            format!("{:.1} ms", ms(p50)),
        ),
        (
            "RSS ≤ 30 MB while draining",
            drain_rss <= 30.0,
            format!("{drain_rss:.1} MB"),
        ),
        (
            "no memory growth from one drain to the next (≤ 1 MB)",
            again_rss <= drain_rss + 1.0,
            format!("{drain_rss:.1} -> {again_rss:.1} MB"),
        ),
        (
            "registry load ≤ 300 ms",
            ms(load) <= 300.0,
            format!("{:.0} ms", ms(load)),
        ),
        (
            "resolution ≤ 1 µs",
            resolve_ns <= 1000.0,
            format!("{resolve_ns:.0} ns"),
        ),
        (
            "start-up to consuming ≤ 200 ms",
            ms(consuming_after) <= 200.0,
            format!("{:.0} ms", ms(consuming_after)),
        ),
        (
            "PostgreSQL drain ≥ 50% of the SQLite drain",
            postgres_rate >= 0.5 * drain_rate,
            format!("{:.0}%", 100.0 * postgres_rate / drain_rate),
        ),
        (
            "every alert emailed exactly as expected",
            true,
            "checked".into(),
        ),
    ];
    let mut met = serde_json::Map::new();
    for (target, ok, figure) in &targets {
        println!(
            "  {} {target:<44} {figure}",
            if *ok { "met   " } else { "MISSED" }
        );
        met.insert((*target).into(), (*ok).into());
    }
    json.insert("targets".into(), met.into());
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/relay.json",
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("\n  written to target/bench/relay.json");
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn rabbitmq_version() -> String {
    Command::new("rabbitmqctl")
        .args(["-q", "version"])
        .output()
        .ok()
        .map(|o| format!("RabbitMQ {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "RabbitMQ".into())
}

/// 35,000 communes of the official geography (arrondissements in place of
/// Paris, Lyon and Marseille) and a registry over them: `ccas` at commune
/// level (one référent per 4 communes, a second one per 2 communes for half
/// of them), `cpam` and `caf` at commune level by 10. Returns the communes.
fn national_registry(path: &Path, geography: &Geography) -> anyhow::Result<Vec<String>> {
    let communes: Vec<String> = geography
        .units()
        .map(|unit| unit.commune.to_string())
        .take(35_000)
        .collect();
    let mut text = String::from(
        "[[route]]\nkind = \"orientation_sociale\"\nnetworks = [\"ccas\"]\n\n[[route]]\nkind = \"acces_aux_droits\"\nnetworks = [\"cpam\", \"caf\"]\n\n",
    );
    let mut id = 0;
    let mut referent = |text: &mut String, network: &str, block: &[String]| {
        id += 1;
        let list: Vec<String> = block.iter().map(|c| format!("\"{c}\"")).collect();
        text.push_str(&format!(
            "[[referent]]\nid = \"{network}-{id}\"\nnetwork = \"{network}\"\norganisation = \"{network} {id}\"\nemail = \"referent{id}@{network}.example.org\"\ncommunes = [{}]\n\n",
            list.join(", ")
        ));
    };
    for block in communes.chunks(4) {
        referent(&mut text, "ccas", block);
    }
    for block in communes[..communes.len() / 2].chunks(2) {
        referent(&mut text, "ccas", block);
    }
    for network in ["cpam", "caf"] {
        for block in communes.chunks(10) {
            referent(&mut text, network, block);
        }
    }
    std::fs::write(path, text)?;
    Ok(communes)
}

fn alert_body(id: &str, commune: &str) -> Vec<u8> {
    serde_json::json!({
        "id": id,
        "kind": "orientation_sociale",
        "priority": "urgent",
        "emitted_at": "2026-11-22T08:15:00+01:00",
        "association": "SOS Médecins Paris",
        "territory": { "commune": commune },
        "summary": "Personne âgée isolée, sans aide à domicile, chute récente. Vit seule au 4e étage sans ascenseur.",
        "patient": { "reference": "D-2026-4411", "name": "Mme Jeanne Durand", "address": "12 rue de la Santé", "phone": "01 45 00 00 00" },
        "contact": { "name": "Dr Martin", "phone": "01 47 07 77 77" },
        "consent": { "status": "given", "given_by": "person", "at": "2026-11-22T08:10:00+01:00" }
    })
    .to_string()
    .into_bytes()
}

fn write_settings(dir: &Path, smtp_port: u16, queue: &str, store: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(if store.starts_with("url") {
        "relais-postgres.toml"
    } else {
        "relais.toml"
    });
    let queue = format!("{queue}.{}", std::process::id());
    let territories = relais_testkit::TERRITORIES;
    // Acknowledgement links in every email, and the alerts' events, as a
    // deployment has them.
    let ack_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let ack_key = dir.join("ack-key");
    std::fs::write(&ack_key, [7u8; 32])?;
    let ack_key = ack_key.display();
    std::fs::write(
        &path,
        format!(
            r#"
[amqp]
url = "{BROKER}"
exchange = "{queue}"
queue = "{queue}"
prefetch = {PREFETCH}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "relais <relais@sos-medecins.example.org>"

[registry]
path = "referents.json"

[territories]
path = "{territories}"

[store]
{store}

[http]
listen = ""

[events]
exchange = "{queue}.events"

[ack]
listen = "127.0.0.1:{ack_port}"
public_url = "http://127.0.0.1:{ack_port}"
key_file = "{ack_key}"

[log]
level = "info,lapin=off"
"#
        ),
    )?;
    Ok(path)
}

/// Publishes every body, persistent, with publisher confirms (awaited in
/// batches).
async fn publish_all(
    connection: &Connection,
    exchange: &str,
    routing_key: &str,
    bodies: &[Vec<u8>],
) -> anyhow::Result<()> {
    let channel: Channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    for batch in bodies.chunks(1000) {
        for body in batch {
            let _confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into()),
                )
                .await?;
        }
        channel.wait_for_confirms().await?;
    }
    channel.close(200, "published".into()).await?;
    Ok(())
}

async fn cleanup(channel: &Channel, topology: &Topology) {
    for queue in topology.queues() {
        let _ = channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
    }
    for exchange in [&topology.exchange, &topology.dead, &topology.events] {
        let _ = channel
            .exchange_delete(
                exchange.as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

/// The ceiling: consume `count` messages, ack each, report rate and CPU.
async fn bare_consumer(queue: &str, count: usize) {
    let connection = Connection::connect(BROKER, ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let cpu_before = process_cpu(std::process::id()).expect("cpu");
    let mut started = None;
    let mut done = 0;
    while done < count {
        let Some(Ok(delivery)) = consumer.next().await else {
            break;
        };
        started.get_or_insert_with(Instant::now);
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
        done += 1;
    }
    let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
    let cpu = process_cpu(std::process::id()).expect("cpu") - cpu_before;
    let report = serde_json::json!({
        "messages": done,
        "per_second": done as f64 / elapsed.as_secs_f64(),
        "cpu_ms_per_message": cpu.as_secs_f64() * 1000.0 / done as f64,
        "peak_rss_mb": peak_rss_mb(std::process::id()).unwrap_or(0.0),
    });
    println!("{report}");
    std::io::stdout().flush().ok();
}

/// The RabbitMQ server's process (the Erlang VM), if it runs here.
fn broker_pid() -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-o", "beam.smp"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// User + system CPU time of a process, from /proc.
fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A process's resident memory, sampled every 10 ms until dropped; the
/// highest value seen.
struct RssSampler {
    highest_kb: Arc<AtomicU64>,
    sampling: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let highest_kb = Arc::new(AtomicU64::new(0));
        let highest = highest_kb.clone();
        let sampling = tokio::spawn(async move {
            loop {
                if let Ok(rss) = current_rss_mb(pid) {
                    highest.fetch_max((rss * 1024.0) as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self {
            highest_kb,
            sampling,
        }
    }

    fn highest_mb(self) -> f64 {
        self.sampling.abort();
        self.highest_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

/// Peak resident memory of a process, in MB, from /proc.
fn peak_rss_mb(pid: u32) -> anyhow::Result<f64> {
    memory_mb(pid, "VmHWM:")
}

/// Resident memory of a process now, in MB, from /proc.
fn current_rss_mb(pid: u32) -> anyhow::Result<f64> {
    memory_mb(pid, "VmRSS:")
}

fn memory_mb(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field}"))?;
    Ok(kb / 1024.0)
}

/// The relais binary, running on the benchmark's settings.
struct Relais {
    child: Child,
    started: Instant,
    log: PathBuf,
}

impl Relais {
    fn start(config: &Path) -> anyhow::Result<Self> {
        let log = config.with_file_name("relais.log");
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_relais"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self {
            child,
            started,
            log,
        })
    }

    /// Time from the start of the process to "consuming alerts".
    fn wait_consuming(&mut self, within: Duration) -> anyhow::Result<Duration> {
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("consuming alerts") {
                return Ok(self.started.elapsed());
            }
            if self.started.elapsed() > within {
                anyhow::bail!("relais did not start consuming: {log}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn cpu(&self) -> anyhow::Result<Duration> {
        process_cpu(self.child.id())
    }

    fn peak_rss_mb(&self) -> anyhow::Result<f64> {
        peak_rss_mb(self.child.id())
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The tests' SMTP server as the benchmark uses it: it offers PIPELINING
/// and CHUNKING as Postfix does, keeps only each email's headers, and
/// checks that every alert reached exactly its référents.
struct Sink(SmtpServer);

impl Sink {
    async fn start() -> anyhow::Result<Self> {
        let server = SmtpServer::start().await;
        server.keep_headers_only();
        Ok(Self(server))
    }

    fn port(&self) -> u16 {
        self.0.port()
    }

    /// Polls every 2 ms rather than waking at every email: the sink shares
    /// the machine's two cores with relais and the broker.
    async fn wait_for(&self, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.0.count() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn reset(&self) {
        self.0.clear();
    }

    /// Each email accepted: its alert, its référent, when.
    fn accepted(&self) -> Vec<(String, String, Instant)> {
        self.0
            .mails()
            .iter()
            .map(|mail| (mail.alert_id(), mail.referent(), mail.at))
            .collect()
    }

    /// Every alert emailed to exactly its référents, once each.
    fn check(&self, expected: &[(String, Vec<String>)]) -> Result<(), String> {
        let accepted = self.accepted();
        let mut got: HashMap<&str, Vec<&str>> = HashMap::new();
        for (alert, referent, _) in &accepted {
            got.entry(alert.as_str())
                .or_default()
                .push(referent.as_str());
        }
        let mut wrong = 0;
        for (alert, referents) in expected {
            let mut want: Vec<&str> = referents.iter().map(String::as_str).collect();
            want.sort_unstable();
            let mut have = got.remove(alert.as_str()).unwrap_or_default();
            have.sort_unstable();
            if have != want {
                wrong += 1;
            }
        }
        if wrong > 0 || !got.is_empty() {
            return Err(format!(
                "{wrong} alert(s) not emailed exactly as expected, {} unexpected",
                got.len()
            ));
        }
        Ok(())
    }

    fn last_accept_per_alert(&self) -> HashMap<String, Instant> {
        let mut last: HashMap<String, Instant> = HashMap::new();
        for (alert, _, at) in self.accepted() {
            let entry = last.entry(alert).or_insert(at);
            if at > *entry {
                *entry = at;
            }
        }
        last
    }
}
