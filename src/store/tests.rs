//! The store's conformance suite: every operation, the group commit and the
//! migrations, run against each engine. SQLite always; PostgreSQL on the
//! tests' server (`RELAIS_TEST_POSTGRES`, which `scripts/test` sets, so CI
//! always runs it; unset, the machine's server on 127.0.0.1:5432 is tried,
//! and the PostgreSQL half says so and passes over where there is none).
//! Each test runs on a store of its own: a temporary file, or a database
//! created empty and dropped at the end.

use secrecy::SecretString;
use tokio_postgres::NoTls;

use super::schema::{POSTGRES_FIRST_RELEASE, STEPS, VERSION};
use super::*;
use crate::alert::{Basis, Consent, GivenBy};
use crate::follow_up::FollowUp;

const DIGEST: Digest = [7; 32];

/// Where one test's store lives.
struct Place {
    settings: StoreSettings,
    /// The SQLite file's folder.
    _folder: tempfile::TempDir,
    /// The PostgreSQL server and database, dropped at the end.
    database: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug)]
enum Engine {
    Sqlite,
    Postgres,
}

impl Place {
    /// A new, empty place for the test `name` on `engine`; `None` when
    /// PostgreSQL is not there and nothing asked for it.
    async fn new(engine: Engine, name: &str) -> Option<Self> {
        let folder = tempfile::tempdir().unwrap();
        let mut settings = StoreSettings {
            path: folder.path().join("state/relais.db"),
            ..StoreSettings::default()
        };
        let mut database = None;
        if let Engine::Postgres = engine {
            let server = postgres_server()?;
            let name = format!("relais_store_{name}");
            admin(
                &server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
            admin(&server, &format!("CREATE DATABASE {name}")).await;
            settings.url = Some(SecretString::from(format!("{server}/{name}")));
            database = Some((server, name));
        }
        Some(Self {
            settings,
            _folder: folder,
            database,
        })
    }

    async fn open(&self) -> Store {
        Store::open(&self.settings).await.unwrap()
    }

    /// Runs `sql` on the store as an earlier relais would have.
    async fn earlier_relais(&self, sqlite: &str, postgres: &str) {
        match &self.database {
            None => {
                std::fs::create_dir_all(self.settings.path.parent().unwrap()).unwrap();
                rusqlite::Connection::open(&self.settings.path)
                    .unwrap()
                    .execute_batch(sqlite)
                    .unwrap();
            }
            Some((server, name)) => {
                let (client, connection) =
                    tokio_postgres::connect(&format!("{server}/{name}"), NoTls)
                        .await
                        .unwrap();
                let driver = tokio::spawn(connection);
                client.batch_execute(postgres).await.unwrap();
                drop(client);
                let _ = driver.await;
            }
        }
    }

    /// The schema version the store records.
    async fn version(&self) -> i64 {
        match &self.database {
            None => rusqlite::Connection::open(&self.settings.path)
                .unwrap()
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .unwrap(),
            Some((server, name)) => {
                let (client, connection) =
                    tokio_postgres::connect(&format!("{server}/{name}"), NoTls)
                        .await
                        .unwrap();
                tokio::spawn(connection);
                let version: Option<i32> = client
                    .query_one("SELECT max(version) FROM relais_schema", &[])
                    .await
                    .unwrap()
                    .get(0);
                i64::from(version.unwrap_or(0))
            }
        }
    }

    /// Puts the store out of reach for `outage`, as a restart of its
    /// server would: PostgreSQL ends the store's connections and refuses
    /// new ones; the SQLite file is held by another writer longer than the
    /// store waits for its lock.
    async fn out_of_reach_for(&self, outage: std::time::Duration) {
        match &self.database {
            None => {
                let path = self.settings.path.clone();
                tokio::task::spawn_blocking(move || {
                    let other = rusqlite::Connection::open(path).unwrap();
                    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
                    std::thread::sleep(outage);
                    other.execute_batch("COMMIT").unwrap();
                })
                .await
                .unwrap();
            }
            Some((server, name)) => {
                admin(
                    server,
                    &format!(
                        "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
                         SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE datname = '{name}'"
                    ),
                )
                .await;
                tokio::time::sleep(outage).await;
                admin(
                    server,
                    &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
                )
                .await;
            }
        }
    }

    async fn clean_up(self) {
        if let Some((server, name)) = &self.database {
            admin(
                server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
        }
    }
}

/// The tests' PostgreSQL server, if there is one.
fn postgres_server() -> Option<String> {
    match std::env::var("RELAIS_TEST_POSTGRES") {
        Ok(server) => Some(server),
        Err(_) => {
            let default = "127.0.0.1:5432";
            if std::net::TcpStream::connect(default).is_ok() {
                Some(format!("postgres://postgres@{default}"))
            } else {
                eprintln!(
                    "no PostgreSQL on {default}: the PostgreSQL half of the store's suite is not run"
                );
                None
            }
        }
    }
}

async fn admin(server: &str, statement: &str) {
    let (client, connection) = tokio_postgres::connect(&format!("{server}/postgres"), NoTls)
        .await
        .expect("the tests' PostgreSQL (RELAIS_TEST_POSTGRES)");
    let driver = tokio::spawn(connection);
    client.batch_execute(statement).await.expect(statement);
    drop(client);
    let _ = driver.await;
}

/// Each test of the suite, once per engine.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let place = super::Place::new(super::Engine::Sqlite, stringify!($test)).await.unwrap();
                    super::$test(&place).await;
                    place.clean_up().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let Some(place) = super::Place::new(super::Engine::Postgres, stringify!($test)).await else {
                        return;
                    };
                    super::$test(&place).await;
                    place.clean_up().await;
                }
            )*
        }
    };
}

conformance!(
    a_recorded_delivery_is_served_and_survives_a_reopen,
    concurrent_writes_all_land_in_group_commits,
    pruning_forgets_only_what_is_older_than_the_retention,
    an_acknowledgement_counts_for_its_network_and_the_chain_state_is_kept,
    pending_alerts_are_grouped_by_network_oldest_first,
    operations_are_recorded_and_read_back,
    the_operator_trace_forgets_only_what_is_older_than_its_retention,
    a_store_of_every_earlier_version_is_migrated_and_keeps_its_records,
    a_store_of_a_newer_relais_is_refused_with_what_to_do,
    a_reader_cannot_write,
    two_publishers_may_use_one_id_and_neither_sees_the_other_s_records,
    records_of_no_known_publisher_are_found_by_every_publisher,
    a_key_is_made_once_and_shared_by_every_handle_on_the_store,
    a_follow_up_acknowledges_and_the_last_choice_of_each_referent_stands,
    a_referent_sees_who_of_their_network_acknowledged_first_and_its_last_follow_up,
    a_declared_absence_counts_from_its_declaration_until_it_ends_or_its_referent_cancels_it,
    declared_absences_are_forgotten_once_ended_or_cancelled_longer_ago_than_the_retention,
    each_delivery_keeps_what_its_alert_said_of_consent,
    a_hand_back_is_kept_until_done_and_its_referent_no_longer_counts_as_acknowledging,
    an_acknowledgement_counts_for_its_network_though_its_email_was_never_recorded,
    parameters_bind_by_their_numbers_whatever_their_order_in_the_statement,
    a_registry_is_kept_once_and_the_last_one_published_is_the_fleet_s,
    each_delivery_names_the_registry_that_routed_it,
    a_bounce_finds_its_email_by_return_path_once_per_action_until_acted_on,
    the_report_keeps_one_row_per_alert_and_network_with_the_first_times,
    a_dead_letter_marks_the_alert_s_networks_or_a_row_of_no_network,
    a_bounce_is_a_fact_of_its_network_and_the_first_one_stays,
    the_report_facts_are_pruned_by_their_own_retention,
    facts_noted_while_the_store_is_out_of_reach_are_written_once_it_is_back,
);

fn delivery(alert: &str, referent: &str, at: OffsetDateTime) -> SentEmail {
    SentEmail {
        publisher: SOS75.into(),
        alert_id: alert.into(),
        referent_id: referent.into(),
        network: Some("ccas".into()),
        email: format!("{referent}@example.org"),
        message_id: format!("<relais.{alert}.{referent}@example.org>"),
        smtp_reply: "2.0.0 Ok: queued as X".into(),
        delivered_at: at,
        consent: Some("given:person:2026-11-22T07:10:00Z".into()),
        registry: Some("0123456789abcdef".into()),
        return_path: None,
    }
}

fn id(alert: &str) -> AlertId {
    AlertId::parse(alert).unwrap()
}

/// The publisher of the tests' alerts.
const SOS75: &str = "sos75-dispatch";

/// Alert `alert` of [`SOS75`].
fn key(alert: &str) -> AlertKey<'_> {
    AlertKey {
        publisher: SOS75,
        id: alert,
    }
}

/// Now, to the second: both engines keep seconds.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

async fn a_recorded_delivery_is_served_and_survives_a_reopen(place: &Place) {
    let store = place.open().await;
    let alert = id("A-1");
    assert!(store.served(key("A-1")).await.unwrap().is_empty());

    let now = now();
    store
        .record(delivery("A-1", "ccas-13", now), DIGEST)
        .await
        .unwrap();
    store
        .record(delivery("A-1", "ccas-13", now), DIGEST)
        .await
        .unwrap(); // a duplicate is a no-op
    store
        .record(delivery("A-1", "caf-75", now), DIGEST)
        .await
        .unwrap();
    drop(store);

    let reopened = place.open().await;
    let mut served = reopened.served(key("A-1")).await.unwrap();
    served.sort_by(|a, b| a.referent_id.cmp(&b.referent_id));
    let expected = |referent: &str| Served {
        referent_id: referent.into(),
        digest: Some(DIGEST),
    };
    assert_eq!(served, [expected("caf-75"), expected("ccas-13")]);
    let audit = AuditReader::open(&place.settings).await.unwrap();
    let rows = audit.alert(&alert).await.unwrap();
    assert_eq!(
        rows,
        [
            delivery("A-1", "caf-75", now),
            delivery("A-1", "ccas-13", now)
        ]
    );
}

async fn concurrent_writes_all_land_in_group_commits(place: &Place) {
    let store = place.open().await;
    let now = now();
    let writes = (0..500).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .record(delivery(&format!("A-{n}"), "r", now), DIGEST)
                .await
        })
    });
    for write in writes {
        write.await.unwrap().unwrap();
    }

    let since = AuditReader::open(&place.settings)
        .await
        .unwrap()
        .since(now - time::Duration::seconds(1))
        .await
        .unwrap();

    assert_eq!(since.len(), 500);
    assert!(
        since
            .iter()
            .all(|email| email.referent_id == "r" && email.delivered_at == now)
    );
}

async fn pruning_forgets_only_what_is_older_than_the_retention(place: &Place) {
    let store = place.open().await;
    let now = now();
    let (old, new) = (
        now - time::Duration::days(31),
        now - time::Duration::days(29),
    );
    store
        .record(delivery("OLD", "r", old), DIGEST)
        .await
        .unwrap();
    store
        .record(delivery("NEW", "r", new), DIGEST)
        .await
        .unwrap();
    store.acknowledge(key("OLD"), "r", None, old).await.unwrap();
    store.acknowledge(key("NEW"), "r", None, new).await.unwrap();
    store
        .follow_up(key("OLD"), "r", None, FollowUp::Refus, old)
        .await
        .unwrap();
    store
        .follow_up(key("NEW"), "r", None, FollowUp::Refus, new)
        .await
        .unwrap();
    store
        .escalation_scheduled(key("OLD"), 1, old)
        .await
        .unwrap();
    store
        .escalation_scheduled(key("NEW"), 1, new)
        .await
        .unwrap();

    let pruned = store.prune(now - time::Duration::days(30)).await.unwrap();

    assert_eq!(pruned, 1);
    assert!(store.served(key("OLD")).await.unwrap().is_empty());
    assert!(store.acknowledgements(&id("OLD")).await.unwrap().is_empty());
    assert!(store.escalation(key("OLD")).await.unwrap().is_empty());
    assert!(store.follow_ups(&id("OLD")).await.unwrap().is_empty());
    assert_eq!(store.follow_ups(&id("NEW")).await.unwrap().len(), 1);
    let served = store.served(key("NEW")).await.unwrap();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].referent_id, "r");
    assert_eq!(
        store.acknowledgements(&id("NEW")).await.unwrap(),
        [("r".to_owned(), new)]
    );
    assert_eq!(store.escalation(key("NEW")).await.unwrap().len(), 1);
}

async fn an_acknowledgement_counts_for_its_network_and_the_chain_state_is_kept(place: &Place) {
    let store = place.open().await;
    let alert = id("A-1");
    let now = now();
    let mut caf = delivery("A-1", "caf-75", now - time::Duration::minutes(10));
    caf.network = Some("caf".into());
    store
        .record(
            delivery("A-1", "ccas-13", now - time::Duration::minutes(10)),
            DIGEST,
        )
        .await
        .unwrap();
    store
        .record(
            delivery("A-1", "ccas-14", now - time::Duration::minutes(4)),
            DIGEST,
        )
        .await
        .unwrap();
    store.record(caf, DIGEST).await.unwrap();
    store
        .escalation_scheduled(key("A-1"), 1, now + time::Duration::hours(2))
        .await
        .unwrap();

    let acknowledged = store
        .acknowledge(key("A-1"), "ccas-14", None, now)
        .await
        .unwrap();
    let again = store
        .acknowledge(
            key("A-1"),
            "ccas-14",
            None,
            now + time::Duration::minutes(1),
        )
        .await
        .unwrap();

    assert_eq!(
        acknowledged,
        Acknowledged {
            first: true,
            network: Some("ccas".into()),
            waited: Some(Duration::from_secs(600)),
        },
        "counted from the network's first email"
    );
    assert!(!again.first);
    assert_eq!(
        store.acknowledged_networks(key("A-1")).await.unwrap(),
        ["ccas"]
    );
    assert_eq!(
        store.acknowledgements(&alert).await.unwrap(),
        [("ccas-14".to_owned(), now)]
    );
    let pending = AuditReader::open(&place.settings)
        .await
        .unwrap()
        .pending(now - time::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].network, "caf");
    assert_eq!(pending[0].referents, ["caf-75"]);
    assert_eq!(pending[0].next.map(|n| n.step), Some(1));
    assert_eq!(pending[0].unacknowledged_at, None);

    assert!(store.escalation_done(key("A-1"), 1, now).await.unwrap());
    assert!(
        !store.escalation_done(key("A-1"), 1, now).await.unwrap(),
        "once"
    );
    assert!(
        store
            .escalation_done(key("A-1"), UNACKNOWLEDGED_STEP, now)
            .await
            .unwrap()
    );
    let steps = store.escalation(key("A-1")).await.unwrap();
    assert_eq!(
        steps,
        [
            EscalationStep {
                step: 1,
                due_at: now + time::Duration::hours(2),
                done_at: Some(now),
            },
            EscalationStep {
                step: UNACKNOWLEDGED_STEP,
                due_at: now,
                done_at: Some(now),
            },
        ]
    );
    let pending = store.pending(now - time::Duration::days(1)).await.unwrap();
    assert_eq!(pending[0].next, None);
    assert_eq!(pending[0].unacknowledged_at, Some(now));
}

async fn pending_alerts_are_grouped_by_network_oldest_first(place: &Place) {
    let store = place.open().await;
    let now = now();
    let at = |minutes| now - time::Duration::minutes(minutes);
    let mut later = delivery("B-2", "caf-75", at(5));
    later.network = Some("caf".into());
    store.record(later, DIGEST).await.unwrap();
    store
        .record(delivery("A-1", "ccas-14", at(20)), DIGEST)
        .await
        .unwrap();
    store
        .record(delivery("A-1", "ccas-13", at(30)), DIGEST)
        .await
        .unwrap();
    store
        .record(delivery("C-3", "ccas-13", at(10)), DIGEST)
        .await
        .unwrap();
    let mut no_network = delivery("D-4", "ccas-13", at(1));
    no_network.network = None;
    store.record(no_network, DIGEST).await.unwrap();
    store
        .acknowledge(key("C-3"), "ccas-13", None, now)
        .await
        .unwrap();

    let pending = store.pending(now - time::Duration::days(1)).await.unwrap();

    let seen: Vec<(&str, &str, Vec<&str>, OffsetDateTime)> = pending
        .iter()
        .map(|p| {
            let referents = p.referents.iter().map(String::as_str).collect();
            (p.alert_id.as_str(), p.network.as_str(), referents, p.since)
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("A-1", "ccas", vec!["ccas-13", "ccas-14"], at(30)),
            ("B-2", "caf", vec!["caf-75"], at(5)),
        ]
    );
    assert_eq!(
        store
            .pending_count(now - time::Duration::days(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.pending_count(at(6)).await.unwrap(), 1, "since counts");
}

async fn operations_are_recorded_and_read_back(place: &Place) {
    let now = now();
    let first = Operation {
        recorded_at: now - time::Duration::minutes(1),
        unix_user: "root (sudo: alice)".into(),
        command: "dead-letters list".into(),
        count: 2,
    };
    let second = Operation {
        recorded_at: now,
        unix_user: "relais".into(),
        command: "dead-letters replay --reason rejected".into(),
        count: 1,
    };

    Store::open_log(&place.settings)
        .await
        .unwrap()
        .record(&first)
        .await
        .unwrap();
    OperationLog::open(&place.settings)
        .await
        .unwrap()
        .record(&second)
        .await
        .unwrap();

    let audit = AuditReader::open(&place.settings).await.unwrap();
    assert_eq!(
        audit.operations(None).await.unwrap(),
        [first, second.clone()]
    );
    assert_eq!(audit.operations(Some(now)).await.unwrap(), [second]);
}

async fn the_operator_trace_forgets_only_what_is_older_than_its_retention(place: &Place) {
    let now = now();
    let operation = |days: i64, command: &str| Operation {
        recorded_at: now - time::Duration::days(days),
        unix_user: "root (sudo: alice)".into(),
        command: command.into(),
        count: 1,
    };
    let (old, new) = (
        operation(366, "dead-letters list"),
        operation(364, "audit --id SOS75-1"),
    );
    for recorded in [&old, &new] {
        OperationLog::open(&place.settings)
            .await
            .unwrap()
            .record(recorded)
            .await
            .unwrap();
    }
    let store = place.open().await;
    store
        .record(delivery("KEPT", "r", old.recorded_at), DIGEST)
        .await
        .unwrap();

    let pruned = store
        .prune_operations(now - time::Duration::days(365))
        .await
        .unwrap();

    assert_eq!(pruned, 1);
    assert_eq!(store.operations(None).await.unwrap(), [new]);
    assert_eq!(
        store.served(key("KEPT")).await.unwrap().len(),
        1,
        "the deliveries have their own retention"
    );
}

/// The schema of a store at `version`, as each engine's relais left it
/// (SQLite, then PostgreSQL). Before versions, a SQLite store had the first
/// table and version 0; a PostgreSQL store began empty.
fn earlier(version: usize) -> (String, String) {
    let sqlite: String = STEPS[..version.max(1)]
        .iter()
        .map(|s| s.sqlite)
        .collect::<Vec<_>>()
        .join("\n");
    let postgres: String = STEPS[..version]
        .iter()
        .map(|s| s.postgres)
        .collect::<Vec<_>>()
        .join("\n");
    (
        format!("{sqlite}\nPRAGMA user_version = {version};"),
        format!(
            "{postgres}\nCREATE TABLE relais_schema (version INTEGER NOT NULL);
             INSERT INTO relais_schema VALUES ({version});"
        ),
    )
}

async fn a_store_of_every_earlier_version_is_migrated_and_keeps_its_records(place: &Place) {
    for version in 0..VERSION {
        let name = format!("migrated_from_{version}");
        let Some(earlier_place) = Place::new(place.engine(), &name).await else {
            return;
        };
        let (sqlite, postgres) = earlier(version);
        earlier_place.earlier_relais(&sqlite, &postgres).await;
        if version >= 1 || earlier_place.database.is_none() {
            earlier_place
                .earlier_relais(
                    "INSERT INTO deliveries (alert_id, referent_id, email, message_id, smtp_reply, delivered_at)
                     VALUES ('A-1', 'r', 'r@example.org', '<m>', '250 ok', 0)",
                    "INSERT INTO deliveries (alert_id, referent_id, email, message_id, smtp_reply, delivered_at)
                     VALUES ('A-1', 'r', 'r@example.org', '<m>', '250 ok', 0)",
                )
                .await;
        }

        let store = earlier_place.open().await;
        let served = store.served(key("A-1")).await.unwrap();

        assert_eq!(
            earlier_place.version().await,
            VERSION as i64,
            "from version {version}"
        );
        if version >= 1 || earlier_place.database.is_none() {
            assert_eq!(
                served,
                [Served {
                    referent_id: "r".into(),
                    digest: None
                }],
                "from version {version}"
            );
        }
        store
            .record(delivery("A-2", "r", now()), DIGEST)
            .await
            .unwrap();
        assert_eq!(
            store.served(key("A-2")).await.unwrap().len(),
            1,
            "from version {version}"
        );
        drop(store);
        earlier_place.clean_up().await;
    }
    // The first relais with a PostgreSQL store numbered its whole schema 1.
    if place.database.is_some() {
        let all: Vec<&str> = STEPS[..POSTGRES_FIRST_RELEASE]
            .iter()
            .map(|s| s.postgres)
            .collect();
        place
            .earlier_relais(
                "",
                &format!(
                    "{}\nCREATE TABLE relais_schema (version INTEGER NOT NULL);
                     INSERT INTO relais_schema VALUES (1);
                     INSERT INTO deliveries (alert_id, referent_id, email, message_id, smtp_reply, delivered_at, network)
                     VALUES ('A-1', 'r', 'r@example.org', '<m>', '250 ok', 0, 'ccas');",
                    all.join("\n")
                ),
            )
            .await;
        let store = place.open().await;
        assert_eq!(store.served(key("A-1")).await.unwrap().len(), 1);
        assert_eq!(place.version().await, VERSION as i64);
    }
}

async fn a_store_of_a_newer_relais_is_refused_with_what_to_do(place: &Place) {
    place
        .earlier_relais(
            "PRAGMA user_version = 99;",
            "CREATE TABLE relais_schema (version INTEGER NOT NULL);
             INSERT INTO relais_schema VALUES (99);",
        )
        .await;

    let Err(error) = Store::open(&place.settings).await else {
        panic!("a newer store was opened");
    };

    assert!(
        error.to_string().ends_with(&format!(
            "has schema version 99, and this relais knows up to {VERSION}: it was written by a \
             newer relais; run that version, or restore the store's backup"
        )),
        "{error}"
    );
}

async fn a_reader_cannot_write(place: &Place) {
    let store = place.open().await;
    store
        .record(delivery("A-1", "r", now()), DIGEST)
        .await
        .unwrap();

    let reader = AuditReader::open(&place.settings).await.unwrap();
    let refused = reader.record(delivery("A-2", "r", now()), DIGEST).await;

    assert!(matches!(refused, Err(StoreError::ReadOnly)), "{refused:?}");
    assert_eq!(reader.served(key("A-1")).await.unwrap().len(), 1);
}

impl Place {
    fn engine(&self) -> Engine {
        if self.database.is_some() {
            Engine::Postgres
        } else {
            Engine::Sqlite
        }
    }
}

async fn two_publishers_may_use_one_id_and_neither_sees_the_other_s_records(place: &Place) {
    let store = place.open().await;
    let now = now();
    let other = AlertKey {
        publisher: "sos13-dispatch",
        id: "A-1",
    };
    let mut theirs = delivery("A-1", "ccas-13", now);
    theirs.publisher = other.publisher.into();
    store
        .record(delivery("A-1", "ccas-13", now), DIGEST)
        .await
        .unwrap();
    store.record(theirs, [9; 32]).await.unwrap();
    store
        .escalation_scheduled(key("A-1"), 1, now)
        .await
        .unwrap();

    let acknowledged = store
        .acknowledge(other, "ccas-13", None, now)
        .await
        .unwrap();

    assert_eq!(
        store.served(key("A-1")).await.unwrap(),
        [Served {
            referent_id: "ccas-13".into(),
            digest: Some(DIGEST)
        }]
    );
    assert_eq!(
        store.served(other).await.unwrap(),
        [Served {
            referent_id: "ccas-13".into(),
            digest: Some([9; 32])
        }]
    );
    assert!(acknowledged.first);
    assert_eq!(store.acknowledged_networks(other).await.unwrap(), ["ccas"]);
    assert!(
        store
            .acknowledged_networks(key("A-1"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.escalation(other).await.unwrap().is_empty());
    assert_eq!(store.escalation(key("A-1")).await.unwrap().len(), 1);
    let pending = store.pending(now - time::Duration::days(1)).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].publisher, SOS75);
    let audit = store.alert(&id("A-1")).await.unwrap();
    let publishers: Vec<&str> = audit.iter().map(|e| e.publisher.as_str()).collect();
    assert_eq!(publishers, ["sos13-dispatch", SOS75]);
}

async fn records_of_no_known_publisher_are_found_by_every_publisher(place: &Place) {
    // Written before relais kept publishers (the migration gives them
    // none), or from a message that named no `user_id`.
    let store = place.open().await;
    let now = now();
    let mut before = delivery("A-1", "ccas-13", now);
    before.publisher = String::new();
    store.record(before, DIGEST).await.unwrap();
    let unknown = AlertKey {
        publisher: "",
        id: "A-1",
    };
    store.escalation_done(unknown, 1, now).await.unwrap();

    assert_eq!(store.served(key("A-1")).await.unwrap().len(), 1);
    assert_eq!(
        store.escalation(key("A-1")).await.unwrap()[0].done_at,
        Some(now),
        "a step carried out before is not carried out again"
    );
    assert!(!store.escalation_done(key("A-1"), 1, now).await.unwrap());
}

async fn a_key_is_made_once_and_shared_by_every_handle_on_the_store(place: &Place) {
    let first = place.open().await;
    let second = place.open().await;

    let made = first.key("digest").await.unwrap();
    let read = second.key("digest").await.unwrap();
    let other = first.key("bounce").await.unwrap();
    drop((first, second));
    let reopened = place.open().await.key("digest").await.unwrap();

    assert_eq!(made, read);
    assert_eq!(made, reopened);
    assert_ne!(made, other);
    assert_ne!(made, [0; 32]);
}

/// A follow-up of [`SOS75`]'s alert `alert`, as `relais audit` reads it.
fn followed(
    alert: &str,
    referent: &str,
    follow_up: FollowUp,
    at: OffsetDateTime,
) -> FollowUpRecord {
    FollowUpRecord {
        publisher: SOS75.into(),
        alert_id: alert.into(),
        referent_id: referent.into(),
        follow_up,
        recorded_at: at,
    }
}

async fn a_follow_up_acknowledges_and_the_last_choice_of_each_referent_stands(place: &Place) {
    let store = place.open().await;
    let now = now();
    let at = |minutes| now + time::Duration::minutes(minutes);
    store
        .record(
            delivery("A-1", "ccas-13", now - time::Duration::minutes(5)),
            DIGEST,
        )
        .await
        .unwrap();

    let first = store
        .follow_up(key("A-1"), "ccas-13", None, FollowUp::Oriente, at(0))
        .await
        .unwrap();
    let same = store
        .follow_up(key("A-1"), "ccas-13", None, FollowUp::Oriente, at(1))
        .await
        .unwrap();
    let changed = store
        .follow_up(key("A-1"), "ccas-13", None, FollowUp::Injoignable, at(2))
        .await
        .unwrap();
    let within_the_second = store
        .follow_up(key("A-1"), "ccas-13", None, FollowUp::HorsPerimetre, at(2))
        .await
        .unwrap();

    assert_eq!(
        first,
        FollowedUp {
            acknowledged: Acknowledged {
                first: true,
                network: Some("ccas".into()),
                waited: Some(Duration::from_secs(300)),
            },
            recorded: true,
        },
        "a follow-up acknowledges an alert not acknowledged yet"
    );
    assert!(!same.recorded, "the last choice again records nothing");
    assert!(!same.acknowledged.first);
    assert!(changed.recorded);
    assert!(within_the_second.recorded);
    assert_eq!(
        store.acknowledgements(&id("A-1")).await.unwrap(),
        [("ccas-13".to_owned(), at(0))]
    );
    assert_eq!(
        AuditReader::open(&place.settings)
            .await
            .unwrap()
            .follow_ups(&id("A-1"))
            .await
            .unwrap(),
        [
            followed("A-1", "ccas-13", FollowUp::Oriente, at(0)),
            followed("A-1", "ccas-13", FollowUp::Injoignable, at(2)),
            followed("A-1", "ccas-13", FollowUp::HorsPerimetre, at(2)),
        ],
        "each choice kept, in order, two within one second too"
    );
    assert_eq!(
        store
            .handling(key("A-1"), "ccas-13")
            .await
            .unwrap()
            .follow_up,
        Some(followed("A-1", "ccas-13", FollowUp::HorsPerimetre, at(2))),
        "the last one stands"
    );
}

async fn a_referent_sees_who_of_their_network_acknowledged_first_and_its_last_follow_up(
    place: &Place,
) {
    let store = place.open().await;
    let now = now();
    let at = |minutes| now + time::Duration::minutes(minutes);
    let mut caf = delivery("A-1", "caf-75", now);
    caf.network = Some("caf".into());
    store.record(caf, DIGEST).await.unwrap();
    for referent in ["ccas-13", "ccas-14"] {
        store
            .record(delivery("A-1", referent, now), DIGEST)
            .await
            .unwrap();
    }
    let untouched = store.handling(key("A-1"), "ccas-14").await.unwrap();

    // Another network acts first: it is not the ccas's.
    store
        .follow_up(key("A-1"), "caf-75", None, FollowUp::Refus, at(1))
        .await
        .unwrap();
    store
        .acknowledge(key("A-1"), "ccas-13", None, at(2))
        .await
        .unwrap();
    store
        .acknowledge(key("A-1"), "ccas-14", None, at(3))
        .await
        .unwrap();
    let acknowledged = store.handling(key("A-1"), "ccas-14").await.unwrap();
    store
        .follow_up(key("A-1"), "ccas-14", None, FollowUp::Injoignable, at(4))
        .await
        .unwrap();
    store
        .follow_up(key("A-1"), "ccas-13", None, FollowUp::ContactEtabli, at(5))
        .await
        .unwrap();

    let second = store.handling(key("A-1"), "ccas-14").await.unwrap();
    let first = store.handling(key("A-1"), "ccas-13").await.unwrap();
    let other_network = store.handling(key("A-1"), "caf-75").await.unwrap();
    let never_emailed = store.handling(key("A-1"), "ccas-15").await.unwrap();
    let other_publisher = store
        .handling(
            AlertKey {
                publisher: "sos13-dispatch",
                id: "A-1",
            },
            "ccas-14",
        )
        .await
        .unwrap();

    assert_eq!(
        untouched,
        Handling {
            colleagues: vec!["ccas-13".into()],
            ..Handling::default()
        }
    );
    assert_eq!(
        acknowledged,
        Handling {
            acknowledged_at: Some(at(3)),
            first_colleague: Some(("ccas-13".into(), at(2))),
            follow_up: None,
            colleagues: vec!["ccas-13".into()],
        }
    );
    let last = followed("A-1", "ccas-13", FollowUp::ContactEtabli, at(5));
    assert_eq!(
        second,
        Handling {
            acknowledged_at: Some(at(3)),
            first_colleague: Some(("ccas-13".into(), at(2))),
            follow_up: Some(last.clone()),
            colleagues: vec!["ccas-13".into()],
        }
    );
    assert_eq!(
        first,
        Handling {
            acknowledged_at: Some(at(2)),
            first_colleague: None,
            follow_up: Some(last),
            colleagues: vec!["ccas-14".into()],
        },
        "the first to acknowledge is nobody's colleague but theirs"
    );
    assert_eq!(
        other_network,
        Handling {
            acknowledged_at: Some(at(1)),
            first_colleague: None,
            follow_up: Some(followed("A-1", "caf-75", FollowUp::Refus, at(1))),
            colleagues: vec![],
        }
    );
    assert_eq!(never_emailed, Handling::default());
    assert_eq!(other_publisher, Handling::default());
}

/// An absence of `referent` from `from` to `to` (`YYYY-MM-DD`), declared at `at`.
fn declaration<'a>(
    referent: &'a str,
    (from, to): (&str, &str),
    deputy: Option<&'a str>,
    at: OffsetDateTime,
) -> AbsenceDeclaration<'a> {
    let absence = crate::availability::Absence::parse(from, to).unwrap();
    AbsenceDeclaration {
        referent_id: referent,
        from: absence.from,
        to: absence.to,
        deputy_id: deputy,
        declared_by: referent,
        declared_at: at,
    }
}

fn date(text: &str) -> Date {
    Date::parse(text, crate::availability::DATE).unwrap()
}

async fn a_declared_absence_counts_from_its_declaration_until_it_ends_or_its_referent_cancels_it(
    place: &Place,
) {
    // Arrange: Camille away 10-12 December with Dominique standing in,
    // Sacha away 1-5 December; both declared at noon on 1 December.
    let store = place.open().await;
    let declared_at = OffsetDateTime::from_unix_timestamp(1_796_126_400).unwrap();
    let camille = declaration(
        "camille",
        ("2026-12-10", "2026-12-12"),
        Some("dominique"),
        declared_at,
    );
    store.declare_absence(camille).await.unwrap();
    store
        .declare_absence(declaration(
            "sacha",
            ("2026-12-01", "2026-12-05"),
            None,
            declared_at,
        ))
        .await
        .unwrap();
    let later = declared_at + time::Duration::hours(1);

    // Act: Sacha tries to cancel Camille's; Camille cancels hers, twice.
    let all = store
        .declared_absences(date("2026-12-01"), later)
        .await
        .unwrap();
    let camille_id = all[1].id;
    let by_another = store
        .cancel_absence("sacha", camille_id, later)
        .await
        .unwrap();
    let cancelled = store
        .cancel_absence("camille", camille_id, later)
        .await
        .unwrap();
    let again = store
        .cancel_absence("camille", camille_id, later + time::Duration::hours(1))
        .await
        .unwrap();
    drop(store);
    let store = place.open().await;
    let in_force = |from: &'static str, at: OffsetDateTime| {
        let store = store.clone();
        async move {
            store
                .declared_absences(date(from), at)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.referent_id)
                .collect::<Vec<_>>()
        }
    };

    // Assert: kept with who, when and what; first day first; in force from
    // its declaration until its end or its cancellation.
    assert_eq!(
        all[1],
        DeclaredAbsence {
            id: camille_id,
            referent_id: "camille".into(),
            from: date("2026-12-10"),
            to: date("2026-12-12"),
            deputy_id: Some("dominique".into()),
            declared_by: "camille".into(),
            declared_at,
            cancelled_at: None,
        }
    );
    assert_eq!(all[0].referent_id, "sacha");
    assert_eq!(all[0].deputy_id, None);
    assert_ne!(all[0].id, camille_id);
    assert_eq!((by_another, cancelled, again), (false, true, false));
    let before_cancel = store
        .declared_absences(date("2026-12-06"), declared_at)
        .await
        .unwrap();
    assert_eq!(before_cancel.len(), 1);
    assert_eq!(before_cancel[0].cancelled_at, Some(later));
    assert_eq!(in_force("2026-12-06", declared_at).await, ["camille"]);
    assert_eq!(in_force("2026-12-06", later).await, Vec::<String>::new());
    assert_eq!(in_force("2026-12-05", later).await, ["sacha"]);
    assert_eq!(
        in_force("2026-12-01", declared_at - time::Duration::seconds(1)).await,
        Vec::<String>::new(),
        "not declared yet"
    );
    let audit = AuditReader::open(&place.settings).await.unwrap();
    assert_eq!(
        audit
            .declared_absences(date("2026-12-01"), later)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn declared_absences_are_forgotten_once_ended_or_cancelled_longer_ago_than_the_retention(
    place: &Place,
) {
    // Arrange: with a retention reaching back to noon on 6 November 2026
    // (UTC, 13:00 in Paris).
    let store = place.open().await;
    let before = OffsetDateTime::from_unix_timestamp(1_793_966_400).unwrap();
    let long_ago = before - time::Duration::days(40);
    for (referent, dates) in [
        ("ended-long-ago", ("2026-10-01", "2026-11-05")),
        ("ended-that-day", ("2026-10-01", "2026-11-06")),
        ("to-come", ("2027-01-01", "2027-01-02")),
        ("cancelled-long-ago", ("2027-01-01", "2027-01-02")),
        ("cancelled-since", ("2027-01-01", "2027-01-02")),
    ] {
        store
            .declare_absence(declaration(referent, dates, None, long_ago))
            .await
            .unwrap();
    }
    let ids = store
        .declared_absences(date("2026-01-01"), long_ago)
        .await
        .unwrap();
    for (referent, at) in [
        ("cancelled-long-ago", before - time::Duration::seconds(1)),
        ("cancelled-since", before),
    ] {
        let id = ids.iter().find(|a| a.referent_id == referent).unwrap().id;
        assert!(store.cancel_absence(referent, id, at).await.unwrap());
    }

    // Act
    store.prune(before).await.unwrap();

    // Assert: what the page or a resolution of the retention's span may
    // still read is kept.
    let mut kept: Vec<String> = store
        .declared_absences(date("2026-01-01"), long_ago)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.referent_id)
        .collect();
    kept.sort();
    assert_eq!(kept, ["cancelled-since", "ended-that-day", "to-come"]);
}

async fn each_delivery_keeps_what_its_alert_said_of_consent(place: &Place) {
    // Arrange: a store as the relais before consents left it, with one
    // delivery.
    let before_consents = STEPS
        .iter()
        .position(|step| step.sqlite.contains("ADD COLUMN consent"))
        .unwrap();
    let (sqlite, postgres) = earlier(before_consents);
    let old_row = "INSERT INTO deliveries (publisher, alert_id, referent_id, email, message_id,
                       smtp_reply, delivered_at, network)
                   VALUES ('sos75-dispatch', 'A-1', 'old', 'old@example.org', '<m>', '250 ok', 0,
                           'ccas');";
    place
        .earlier_relais(
            &format!("{sqlite}\n{old_row}"),
            &format!("{postgres}\n{old_row}"),
        )
        .await;
    let store = place.open().await;
    let at = OffsetDateTime::parse(
        "2026-11-22T08:10:00+01:00",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let consents = [
        (
            "given",
            Some(Consent::Given {
                by: GivenBy::LegalRepresentative,
                at,
            }),
        ),
        (
            "waived",
            Some(Consent::NotRequired {
                basis: Basis::VitalInterest,
            }),
        ),
        ("unsaid", None),
    ];
    let now = now();

    // Act
    for (referent, consent) in consents {
        let mut sent = delivery("A-1", referent, now);
        sent.consent = Some(consent_record(consent));
        store.record(sent, DIGEST).await.unwrap();
    }

    // Assert: each record says what its alert said; the one of before,
    // nothing.
    let audit = AuditReader::open(&place.settings).await.unwrap();
    let kept = |rows: Vec<SentEmail>| -> Vec<(String, Option<String>)> {
        rows.into_iter()
            .map(|row| (row.referent_id, row.consent))
            .collect()
    };
    let expected = [
        ("old".to_owned(), None),
        (
            "given".to_owned(),
            Some("given:legal_representative:2026-11-22T07:10:00Z".to_owned()),
        ),
        ("unsaid".to_owned(), Some("none".to_owned())),
        (
            "waived".to_owned(),
            Some("not_required:vital_interest".to_owned()),
        ),
    ];
    assert_eq!(kept(audit.alert(&id("A-1")).await.unwrap()), expected);
    assert_eq!(kept(audit.since(now).await.unwrap()), expected[1..]);
}

/// The acknowledgement page can be clicked before its email's record is
/// written (the group commit) or when that record was lost (the store
/// went away between the server's "250" and the record): the network
/// the pages found the référent in counts, so that the chain stops.
async fn an_acknowledgement_counts_for_its_network_though_its_email_was_never_recorded(
    place: &Place,
) {
    // Arrange: A-1's email to ccas-13 was sent, its record lost; B-2's
    // email to caf-75 was recorded.
    let store = place.open().await;
    let at = now();
    let mut recorded = delivery("B-2", "caf-75", at);
    recorded.network = Some("caf".into());
    store.record(recorded, DIGEST).await.unwrap();

    // Act: both acknowledged from their links; B-2's page named another
    // network (the registry changed since): the email's record wins.
    let first = store
        .acknowledge(key("A-1"), "ccas-13", Some("ccas"), at)
        .await
        .unwrap();
    store
        .acknowledge(key("B-2"), "caf-75", Some("cpam"), at)
        .await
        .unwrap();
    let a1 = store.acknowledged_networks(key("A-1")).await.unwrap();
    let b2 = store.acknowledged_networks(key("B-2")).await.unwrap();

    // Assert
    assert!(first.first);
    assert_eq!(first.network.as_deref(), Some("ccas"));
    assert_eq!(a1, ["ccas"]);
    assert_eq!(b2, ["caf"]);
}

async fn a_hand_back_is_kept_until_done_and_its_referent_no_longer_counts_as_acknowledging(
    place: &Place,
) {
    // Arrange: A-1 emailed to two référents of the ccas network, its copy
    // kept; both acknowledged, then the first handed it back.
    let store = place.open().await;
    let at = now();
    for referent in ["r1", "r2"] {
        store
            .record(delivery("A-1", referent, at), DIGEST)
            .await
            .unwrap();
    }
    store
        .keep_copy(
            key("A-1"),
            b"sealed bytes".to_vec(),
            at + time::Duration::days(14),
        )
        .await
        .unwrap();
    store.acknowledge(key("A-1"), "r1", None, at).await.unwrap();

    // Act
    let first = store.hand_back(key("A-1"), "r1", at).await.unwrap();
    let again = store.hand_back(key("A-1"), "r1", at).await.unwrap();
    let due = store.hand_backs_due().await.unwrap();
    let acknowledging = store.acknowledged_networks(key("A-1")).await.unwrap();
    store.hand_back_done(&due[0], at).await.unwrap();
    let after = store.hand_backs_due().await.unwrap();
    store.acknowledge(key("A-1"), "r2", None, at).await.unwrap();
    let by_the_other = store.acknowledged_networks(key("A-1")).await.unwrap();

    // Assert
    assert!(first && !again);
    assert_eq!(
        due,
        [HandBack {
            publisher: SOS75.into(),
            alert_id: "A-1".into(),
            referent_id: "r1".into(),
            requested_at: OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).unwrap(),
        }]
    );
    assert!(acknowledging.is_empty(), "{acknowledging:?}");
    assert!(after.is_empty());
    assert_eq!(by_the_other, ["ccas"]);
    assert_eq!(
        store.copy(key("A-1")).await.unwrap().as_deref(),
        Some(&b"sealed bytes"[..])
    );
    assert_eq!(
        store.handed_back(key("A-1")).await.unwrap(),
        [("r1".to_owned(), due[0].requested_at)]
    );
}

async fn parameters_bind_by_their_numbers_whatever_their_order_in_the_statement(place: &Place) {
    let store = place.open().await;

    store
        .engine
        .execute(
            "INSERT INTO keys (name, secret, created_at) VALUES ($2, $3, $1)",
            vec![7_i64.into(), "seven".into(), b"secret".as_slice().into()],
        )
        .await
        .unwrap();
    let mut rows = store
        .engine
        .read(
            "SELECT created_at, secret FROM keys WHERE name = $1",
            vec!["seven".into()],
        )
        .await
        .unwrap();

    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].int(0).unwrap(), 7);
    assert_eq!(
        rows[0].blob_or_null(1).unwrap().as_deref(),
        Some(&b"secret"[..])
    );
}

/// A registry of `body`, as the store keeps it.
fn kept(digest: &str, version: Option<&str>, body: &str) -> KeptRegistry {
    KeptRegistry {
        digest: digest.into(),
        version: version.map(str::to_owned),
        format: "toml".into(),
        body: body.as_bytes().to_vec(),
    }
}

async fn a_registry_is_kept_once_and_the_last_one_published_is_the_fleet_s(place: &Place) {
    let store = place.open().await;
    let first = kept("aaaa", None, "[[route]]\n");
    let second = kept("bbbb", Some("2026-12"), "[[referent]]\n");

    let nothing_published = store.published_digest().await.unwrap();
    store.keep_registry(&first).await.unwrap();
    store
        .keep_registry(&kept("aaaa", Some("later"), "other"))
        .await
        .unwrap();
    let kept_only = store.published_digest().await.unwrap();
    store.publish_registry(&second).await.unwrap();
    store.publish_registry(&first).await.unwrap();
    let last = store.published_digest().await.unwrap();
    store.publish_registry(&second).await.unwrap();
    let again = place.open().await.published_digest().await.unwrap();

    assert_eq!(nothing_published, None);
    assert_eq!(kept_only, None, "kept is not published");
    assert_eq!(last.as_deref(), Some("aaaa"), "within one second too");
    assert_eq!(again.as_deref(), Some("bbbb"));
    assert_eq!(store.kept_registry("aaaa").await.unwrap(), Some(first));
    assert_eq!(store.kept_registry("bbbb").await.unwrap(), Some(second));
    assert_eq!(store.kept_registry("cccc").await.unwrap(), None);
    let versions: Vec<(String, Option<String>, bool)> = store
        .registry_versions()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.digest, v.version, v.published_at.is_some()))
        .collect();
    assert_eq!(
        versions,
        [
            ("bbbb".to_owned(), Some("2026-12".to_owned()), true),
            ("aaaa".to_owned(), None, true),
        ]
    );
}

async fn each_delivery_names_the_registry_that_routed_it(place: &Place) {
    let store = place.open().await;
    let now = OffsetDateTime::now_utc();
    let mut old = delivery("SOS75-1-OLD", "ccas-paris", now);
    old.registry = None;
    store.record(old, [1; 32]).await.unwrap();
    store
        .record(delivery("SOS75-2-NEW", "ccas-paris", now), [2; 32])
        .await
        .unwrap();

    let registries: Vec<Option<String>> = store
        .since(now - Duration::from_secs(60))
        .await
        .unwrap()
        .into_iter()
        .map(|sent| sent.registry)
        .collect();

    assert_eq!(registries, [None, Some("0123456789abcdef".to_owned())]);
}

async fn a_bounce_finds_its_email_by_return_path_once_per_action_until_acted_on(place: &Place) {
    let store = place.open().await;
    let now = now();
    // The top bit set: a number past i64::MAX is kept and found as it is.
    let number = u64::MAX - 41;
    let mut sent = delivery("A-BOUNCE", "camille", now);
    sent.return_path = Some(number);
    store.record(sent, DIGEST).await.unwrap();
    store
        .record(delivery("A-BOUNCE", "dominique", now), DIGEST)
        .await
        .unwrap();

    let returned = store.returned_email(number).await.unwrap().unwrap();
    let unknown = store.returned_email(number - 1).await.unwrap();
    let delayed = store
        .record_bounce(&returned, BounceAction::Delayed, "4.4.1", now)
        .await
        .unwrap();
    let failed = store
        .record_bounce(&returned, BounceAction::Failed, "5.1.1", now)
        .await
        .unwrap();
    let replayed = store
        .record_bounce(&returned, BounceAction::Failed, "5.2.2", now)
        .await
        .unwrap();
    let due = store.bounces_to_act_on().await.unwrap();
    store.bounce_acted_on(&due[0], now).await.unwrap();
    let due_after = store.bounces_to_act_on().await.unwrap();
    let audit = AuditReader::open(&place.settings)
        .await
        .unwrap()
        .bounces_of("A-BOUNCE")
        .await
        .unwrap();

    assert_eq!(
        returned,
        ReturnedEmail {
            return_path: number,
            publisher: SOS75.into(),
            alert_id: "A-BOUNCE".into(),
            referent_id: "camille".into(),
            network: Some("ccas".into()),
        }
    );
    assert_eq!(unknown, None);
    assert!(delayed && failed && !replayed);
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].action, due[0].status.as_str()),
        (BounceAction::Failed, "5.1.1")
    );
    assert!(due_after.is_empty());
    let seen: Vec<_> = audit
        .iter()
        .map(|b| (b.action, b.status.as_str(), b.acted_at))
        .collect();
    assert_eq!(
        seen,
        [
            (BounceAction::Delayed, "4.4.1", None),
            (BounceAction::Failed, "5.1.1", Some(now)),
        ]
    );
    let alert = store.alert(&id("A-BOUNCE")).await.unwrap();
    assert_eq!(
        alert.iter().map(|d| d.return_path).collect::<Vec<_>>(),
        [Some(number), None]
    );
}

/// What the report's facts say of `alert` of [`SOS75`] received at `at`.
fn about(at: OffsetDateTime) -> AlertFacts<'static> {
    AlertFacts {
        departement: "75",
        kind: "orientation_sociale",
        received_at: at,
    }
}

async fn the_report_keeps_one_row_per_alert_and_network_with_the_first_times(place: &Place) {
    let store = place.open().await;
    let t = now() - time::Duration::hours(2);
    let minutes = |n: i64| t + time::Duration::minutes(n);
    store
        .fact(Fact::delivered(key("A-1"), "ccas", about(t), minutes(1)))
        .await
        .unwrap();
    store
        .fact(Fact::delivered(key("A-1"), "caf", about(t), minutes(1)))
        .await
        .unwrap();
    // A second email of the network (a deputy), and a redelivery: the
    // first times stay.
    store
        .fact(Fact::delivered(
            key("A-1"),
            "ccas",
            about(minutes(30)),
            minutes(31),
        ))
        .await
        .unwrap();
    store
        .fact(Fact::acknowledged(key("A-1"), "ccas", minutes(10)))
        .await
        .unwrap();
    store
        .fact(Fact::acknowledged(key("A-1"), "ccas", minutes(20)))
        .await
        .unwrap();
    store
        .fact(Fact::escalated(key("A-1"), "caf", 1, minutes(40)))
        .await
        .unwrap();
    store
        .fact(Fact::escalated(
            key("A-1"),
            "caf",
            UNACKNOWLEDGED_STEP,
            minutes(80),
        ))
        .await
        .unwrap();
    store
        .fact(Fact::escalated(key("A-1"), "caf", 1, minutes(81)))
        .await
        .unwrap();
    store
        .fact(Fact::followed_up(
            key("A-1"),
            "ccas",
            FollowUp::Oriente,
            minutes(50),
        ))
        .await
        .unwrap();
    store
        .fact(Fact::followed_up(
            key("A-1"),
            "ccas",
            FollowUp::ContactEtabli,
            minutes(60),
        ))
        .await
        .unwrap();

    let facts = store.report_facts(t, minutes(1)).await.unwrap();

    let alert = store.pseudonym(SOS75, "A-1").await.unwrap();
    assert_eq!(alert.len(), 32);
    assert!(!alert.contains("A-1"));
    assert_ne!(
        alert,
        store.pseudonym("sos13-dispatch", "A-1").await.unwrap()
    );
    let row = |network: &str| ReportFact {
        alert: alert.clone(),
        network: network.into(),
        publisher: SOS75.into(),
        departement: Some("75".into()),
        kind: Some("orientation_sociale".into()),
        received_at: t,
        delivered_at: Some(minutes(1)),
        bounced_at: None,
        dead_reason: None,
        acknowledged_at: None,
        escalated: 0,
        unacknowledged: false,
        outcome: None,
    };
    assert_eq!(
        facts,
        [
            ReportFact {
                escalated: UNACKNOWLEDGED_STEP,
                unacknowledged: true,
                ..row("caf")
            },
            ReportFact {
                acknowledged_at: Some(minutes(10)),
                outcome: Some("contact_etabli".into()),
                ..row("ccas")
            },
        ]
    );
    // Only the alerts received in the period; another handle on the store
    // makes the same pseudonyms.
    assert!(
        store
            .report_facts(t + time::Duration::seconds(1), minutes(90))
            .await
            .unwrap()
            .is_empty()
    );
    let reader = Store::open_reader(&place.settings).await.unwrap();
    assert_eq!(reader.report_facts(t, minutes(1)).await.unwrap(), facts);
    drop(store);
    let again = place.open().await;
    assert_eq!(again.pseudonym(SOS75, "A-1").await.unwrap(), alert);
}

async fn a_dead_letter_marks_the_alert_s_networks_or_a_row_of_no_network(place: &Place) {
    let store = place.open().await;
    let t = now() - time::Duration::hours(1);
    store
        .fact(Fact::delivered(key("A-1"), "ccas", about(t), t))
        .await
        .unwrap();
    store
        .fact(Fact::dead_lettered(
            key("A-1"),
            "rejected",
            Some(about(t)),
            t + time::Duration::minutes(1),
        ))
        .await
        .unwrap();
    store
        .fact(Fact::dead_lettered(
            key("A-2"),
            "unroutable",
            Some(about(t)),
            t,
        ))
        .await
        .unwrap();
    // Not a valid alert: its publisher, and nothing more is known.
    store
        .fact(Fact::dead_lettered(key("unnamed 00"), "invalid", None, t))
        .await
        .unwrap();

    let facts = store
        .report_facts(t, t + time::Duration::seconds(1))
        .await
        .unwrap();

    let shown: Vec<(String, Option<&str>, Option<&str>, bool)> = facts
        .iter()
        .map(|f| {
            (
                f.network.clone(),
                f.dead_reason.as_deref(),
                f.departement.as_deref(),
                f.delivered_at.is_some(),
            )
        })
        .collect();
    let mut expected = vec![
        ("ccas".to_owned(), Some("rejected"), Some("75"), true),
        (String::new(), Some("unroutable"), Some("75"), false),
        (String::new(), Some("invalid"), None, false),
    ];
    let mut shown_sorted = shown.clone();
    shown_sorted.sort();
    expected.sort();
    assert_eq!(shown_sorted, expected);
    assert!(facts.iter().all(|f| f.publisher == SOS75));
}

async fn a_bounce_is_a_fact_of_its_network_and_the_first_one_stays(place: &Place) {
    let store = place.open().await;
    let t = now() - time::Duration::hours(1);
    store
        .fact(Fact::delivered(key("A-1"), "cpam", about(t), t))
        .await
        .unwrap();

    store
        .fact_bounced(key("A-1"), "cpam", t + time::Duration::minutes(5))
        .await
        .unwrap();
    store
        .fact_bounced(key("A-1"), "cpam", t + time::Duration::minutes(9))
        .await
        .unwrap();

    let facts = store
        .report_facts(t, t + time::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(facts.len(), 1);
    assert_eq!(facts[0].network, "cpam");
    assert_eq!(facts[0].delivered_at, Some(t));
    assert_eq!(facts[0].bounced_at, Some(t + time::Duration::minutes(5)));
}

async fn the_report_facts_are_pruned_by_their_own_retention(place: &Place) {
    let store = place.open().await;
    let t = now();
    let old = t - time::Duration::days(400);
    store
        .fact(Fact::delivered(key("A-1"), "ccas", about(old), old))
        .await
        .unwrap();
    store
        .fact(Fact::delivered(key("A-2"), "ccas", about(t), t))
        .await
        .unwrap();
    // The deliveries' pruning leaves the facts alone.
    store.prune(t - time::Duration::days(30)).await.unwrap();
    assert_eq!(
        store
            .report_facts(old, t + time::Duration::seconds(1))
            .await
            .unwrap()
            .len(),
        2
    );

    let pruned = store
        .prune_report(t - time::Duration::days(396))
        .await
        .unwrap();

    assert_eq!(pruned, 1);
    let left = store
        .report_facts(old, t + time::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].received_at, t);
}

/// The report's facts are written beside the work ([`Store::note`]): one
/// noted while the store cannot be reached (its server restarting) is
/// written once it can, not dropped.
async fn facts_noted_while_the_store_is_out_of_reach_are_written_once_it_is_back(place: &Place) {
    let store = place.open().await;
    let t = now() - time::Duration::hours(1);
    let delivered = |facts: &[ReportFact]| {
        facts
            .iter()
            .map(|fact| (fact.network.clone(), fact.delivered_at))
            .collect::<Vec<_>>()
    };
    let written = |count: usize| {
        let store = store.clone();
        async move {
            for _ in 0..600 {
                let facts = store
                    .report_facts(t, t + time::Duration::seconds(1))
                    .await
                    .unwrap_or_default();
                if facts.len() >= count {
                    return facts;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            store
                .report_facts(t, t + time::Duration::seconds(1))
                .await
                .unwrap()
        }
    };
    store.note(Fact::delivered(key("A-BEFORE"), "ccas", about(t), t));
    assert_eq!(delivered(&written(1).await), [("ccas".to_owned(), Some(t))]);

    // Out of reach longer than SQLite's wait for its lock (5 s).
    let outage = std::time::Duration::from_secs(7);
    let later = t + time::Duration::minutes(1);
    tokio::join!(place.out_of_reach_for(outage), async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        store.note(Fact::delivered(key("A-DURING"), "caf", about(t), later));
    });

    let mut facts = delivered(&written(2).await);
    facts.sort();
    assert_eq!(
        facts,
        [
            ("caf".to_owned(), Some(later)),
            ("ccas".to_owned(), Some(t))
        ]
    );
}
