//! What every integration test and the benchmark build on: an isolated
//! world (its own exchange and queue names on the real broker, its own SMTP
//! server, its own settings and registry files), a way to run relais in it
//! (in process, or as the real binary), and a broker client to publish and
//! inspect queues.
//!
//! A crate of its own, compiled once for every test binary. One file per
//! thing it starts or reaches: `world.rs` (the World and relais run in it),
//! `process.rs` (the real binary as a child process), `broker.rs` (the
//! machine's broker), `rabbitmq.rs` (nodes and a cluster of the tests'
//! own), `postgres.rs` (the store's databases and a TLS server), `smtp.rs`
//! (the scriptable SMTP server), `mta.rs` (Postfix and Exim), `browser.rs`
//! (Chromium), `http.rs` (relais's HTTP endpoints), `ca.rs` (certificates),
//! `spreadsheet.rs` (a national registry as a spreadsheet);
//! `fixtures.rs` holds the data and deadlines the tests share, `national_changes.rs`
//! a registry at national scale and a copy of it with changes. Each is
//! defined once here, never again in a test file.

pub mod broker;
pub mod browser;
pub mod ca;
pub mod dispatch;
pub mod fixtures;
pub mod http;
pub mod mta;
pub mod national_changes;
pub mod netns;
pub mod postgres;
pub mod process;
pub mod rabbitmq;
pub mod smtp;
pub mod spreadsheet;
pub mod world;

pub use broker::{BROKER, Broker, DeadLetter, StoppedBroker, broker_url, rabbitmqctl};
pub use ca::TestCa;
pub use dispatch::DispatchUser;
pub use fixtures::{
    ACK_SECRET, REGISTRY, STREAM_WAIT, TERRITORIES, WAIT, alert, escalating, france, link_in,
    registry_digest, registry_of, unique,
};
pub use http::{http_get, http_get_at, http_request, sample, wait_for_role, wait_for_role_at};
pub use process::{Logs, relais_binary, signal, text, wait_exit};
pub use world::{RunningApp, World, test_store};
