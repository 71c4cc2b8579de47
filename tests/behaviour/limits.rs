//! Limits under abuse: a flood of 50,000 invalid messages (garbage, broken
//! JSON, wrong types, missing fields, control characters, non-UTF-8,
//! oversized) is dead-lettered, each with its reason, while the real
//! binary's memory stays flat (the rate is printed, not asserted); and a
//! flood of valid alerts to one référent is delivered, but said once in the
//! log and counted.
//!
//! How big an alert can be, bounded before relais holds it: lapin reads a
//! message's whole body before handing it over, so the bound that protects
//! relais's memory is the broker's `max_message_size` (the setting
//! docs/operations.md asks operators to make). A RabbitMQ node of this
//! test's own carries it (`rabbitmq::Node`, beside the machine's broker):
//! an alert past it is refused to its publisher and never reaches relais;
//! one within it but past relais's `amqp.max_message_bytes` is
//! dead-lettered as `invalid`, with its size; relais carries on.

use relais_testkit as support;

use std::time::{Duration, Instant};

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use support::rabbitmq::Node;
use support::smtp::SmtpServer;
use support::{Broker, Logs, REGISTRY, WAIT, World, alert, signal, wait_exit};

const FLOOD: usize = 50_000;

const WARM_UP: usize = 2_000;

/// Growth allowed between the warmed-up process and the end of the flood,
/// and for the peak (allocator slack, the broker connection's buffers);
/// measured: about 0.4 MiB for both. A leak of 90 bytes per message would
/// exceed the first.
const GROWTH_KB: u64 = 4 * 1024;

const PEAK_KB: u64 = 8 * 1024;

/// The `n`th hostile message: every way a body can be invalid.
fn hostile(n: usize) -> Vec<u8> {
    let valid = || -> serde_json::Value {
        serde_json::from_slice(&alert("X", "orientation_sociale", "75115")).unwrap()
    };
    match n % 8 {
        0 => format!("not json {n} {{").into_bytes(),
        1 => format!(r#"{{"id": "FLOOD-{n}"}}"#).into_bytes(),
        2 => {
            let mut alert = valid();
            alert["id"] = serde_json::json!(n);
            alert.to_string().into_bytes()
        }
        3 => {
            let mut alert = valid();
            alert["id"] = format!("FLOOD-{n}").into();
            alert["patient"]["name"] = "Mme Durand\r\nBcc: intrus@example.org".into();
            alert.to_string().into_bytes()
        }
        4 => {
            let mut bytes = format!(r#"{{"id": "FLOOD-{n}", "kind": ""#).into_bytes();
            bytes.extend_from_slice(&[0xff, 0xfe, 0x80]);
            bytes.extend_from_slice(br#""}"#);
            bytes
        }
        5 => {
            let mut alert = valid();
            alert["id"] = format!("FLOOD-{n}").into();
            alert["territory"]["commune"] = "7511".into();
            alert.to_string().into_bytes()
        }
        6 if n % 1000 == 6 => vec![b' '; 70_000],
        6 => b"[]".to_vec(),
        _ => {
            let mut alert = valid();
            alert["id"] = format!("FLOOD-{n}").into();
            alert["emitted_at"] = "yesterday".into();
            alert.to_string().into_bytes()
        }
    }
}

/// Resident and peak memory of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Publishes messages `range` with confirms, a thousand in flight at once.
async fn publish(world: &World, range: std::ops::Range<usize>) {
    let channel = world.broker.connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let numbers: Vec<usize> = range.collect();
    for batch in numbers.chunks(1000) {
        let mut confirms = Vec::with_capacity(batch.len());
        for &n in batch {
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            let confirm = channel
                .basic_publish(
                    world.exchange.as_str().into(),
                    "orientation_sociale".into(),
                    BasicPublishOptions::default(),
                    &hostile(n),
                    properties,
                )
                .await
                .unwrap();
            confirms.push(confirm);
        }
        for confirm in confirms {
            assert!(confirm.await.unwrap().is_ack(), "the broker took it");
        }
    }
    channel.close(200, "published".into()).await.unwrap();
}

#[tokio::test]
async fn a_flood_of_invalid_messages_is_dead_lettered_without_memory_growth() {
    // Arrange: relais warmed up on the first messages.
    let world = World::new(REGISTRY).await;
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);
    publish(&world, 0..WARM_UP).await;
    let dead = world.dead();
    let within = Duration::from_secs(120);
    assert_eq!(
        world.wait_for_depth(&dead, WARM_UP as u32, within).await,
        WARM_UP as u32
    );
    let (warm, _) = memory(relais.id());

    // Act
    let start = Instant::now();
    publish(&world, WARM_UP..FLOOD).await;
    let depth = world.wait_for_depth(&dead, FLOOD as u32, within).await;
    let elapsed = start.elapsed();
    let (after, peak) = memory(relais.id());
    signal(&relais, "TERM");
    let exit = wait_exit(&mut relais, Duration::from_secs(30)).await;

    // Assert: every message in `.dead` as invalid, none emailed, memory flat.
    eprintln!(
        "flood: {} invalid messages dead-lettered in {:.1} s ({:.0}/s, publishing included); \
         RSS warmed up {warm} KiB, after {after} KiB, peak {peak} KiB",
        FLOOD - WARM_UP,
        elapsed.as_secs_f64(),
        (FLOOD - WARM_UP) as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(depth, FLOOD as u32);
    assert!(exit.success(), "{exit:?}");
    assert_eq!(world.broker.depth(&world.queue).await, 0);
    assert!(world.smtp.mails().is_empty());
    assert_eq!(world.smtp.attempts(), 0);
    let logs = logs.all();
    let invalid = logs
        .lines()
        .filter(|line| line.contains("alert dead-lettered") && line.contains("reason=\"invalid\""))
        .count();
    assert_eq!(invalid, FLOOD, "one line per message, each `invalid`");
    assert!(
        after <= warm + GROWTH_KB,
        "RSS grew from {warm} KiB to {after} KiB during the flood"
    );
    assert!(
        peak <= warm + PEAK_KB,
        "RSS peaked at {peak} KiB, from {warm} KiB warmed up"
    );
    world.cleanup().await;
}

#[tokio::test]
async fn alerts_to_one_referent_past_the_hourly_limit_are_delivered_said_once_and_counted() {
    // Arrange: at most 3 alerts an hour to a référent.
    let port = support::smtp::SmtpServer::free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let world = World::with_env(
        REGISTRY,
        &[
            ("RELAIS__REGISTRY__MAX_ALERTS_PER_REFERENT_PER_HOUR", "3"),
            ("RELAIS__HTTP__LISTEN", listen.as_str()),
        ],
    )
    .await;
    let mut relais = world.spawn_binary();
    let logs = Logs::collect(&mut relais);

    // Act: six alerts for Paris 15e (one référent), one for Ajaccio.
    for n in 0..6 {
        let id = format!("SOS75-FLOOD-{n}");
        world
            .publish(
                "orientation_sociale",
                &alert(&id, "orientation_sociale", "75115"),
            )
            .await;
    }
    world
        .publish(
            "orientation_sociale",
            &alert("SOS2A-1", "orientation_sociale", "2A004"),
        )
        .await;
    let mails = world.smtp.wait_for(7, Duration::from_secs(20)).await;
    let floods = "relais_referent_floods_total{network=\"ccas\"}";
    // The count follows the server's reply by a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (_, metrics) = support::http_get(port, "/metrics").await;
        if support::sample(&metrics, floods) == Some(3.0) || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    signal(&relais, "TERM");
    let exit = wait_exit(&mut relais, Duration::from_secs(30)).await;

    // Assert: all delivered; one warning, for the flooded référent; three
    // alerts counted past the limit.
    assert!(exit.success(), "{exit:?}");
    assert_eq!(mails.len(), 7);
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.to == ["social@paris.test"])
            .count(),
        6
    );
    let logs = logs.all();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("more alerts to this référent in an hour"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("referent=ccas-paris "),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("count=4 limit=3"), "{}", warnings[0]);
    assert_eq!(support::sample(&metrics, floods), Some(3.0), "{metrics}");
    world.cleanup().await;
}

/// The node's `max_message_size`, twice relais's default body limit.
const BROKER_LIMIT: usize = 131_072;

#[tokio::test]
async fn the_broker_refuses_an_alert_past_its_limit_and_relais_dead_letters_one_past_its_own() {
    // Arrange
    let node = Node::start(
        "relais-size",
        |_, port| {
            format!("listeners.tcp.default = 127.0.0.1:{port}\nmax_message_size = {BROKER_LIMIT}\n")
        },
        "[].\n",
    );
    let url = node.url();
    let world = World::with_broker(
        REGISTRY,
        SmtpServer::start().await,
        Broker::connect_url(&url).await,
        &[("RELAIS__AMQP__URL", url.as_str())],
    )
    .await;
    let app = world.spawn();

    // Act: one byte past the broker's limit, then exactly at it, then an
    // ordinary alert.
    let channel = world.broker.connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let oversize = vec![b'x'; BROKER_LIMIT + 1];
    let refused = match channel
        .basic_publish(
            world.exchange.as_str().into(),
            "orientation_sociale".into(),
            BasicPublishOptions::default(),
            &oversize,
            BasicProperties::default(),
        )
        .await
    {
        Ok(confirm) => confirm.await.map(|_| ()),
        Err(error) => Err(error),
    };
    let at_limit = vec![b'x'; BROKER_LIMIT];
    world.publish("orientation_sociale", &at_limit).await;
    world.publish_one("SOS75-AFTER").await;
    let mails = world.smtp.wait_for(1, WAIT).await;
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    app.stop().await;

    // Assert
    let error = refused.expect_err("the broker refuses a message past max_message_size");
    assert!(error.to_string().contains("PRECONDITION_FAILED"), "{error}");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].alert_id(), "SOS75-AFTER");
    let dead = world.broker.take_all(&world.dead()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body.len(), BROKER_LIMIT);
    assert_eq!(
        dead[0].header("x-relais-reason").as_deref(),
        Some("invalid")
    );
    assert_eq!(
        dead[0].header("x-relais-error").as_deref(),
        Some("the message is 131072 bytes, over the limit of 65536 bytes (amqp.max_message_bytes)")
    );
    assert_eq!(world.broker.depth(&world.queue).await, 0);
}
