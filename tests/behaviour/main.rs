//! The behaviour of relais, one module per feature: a new test goes in the
//! module of the feature it checks (docs/testing.md has the map). Each test
//! builds its own world through relais-testkit (its own exchange, queues,
//! SMTP server and files), so they run side by side in this one binary,
//! which cargo links once.
//!
//! They share one process: no test may set an environment variable, change
//! the current directory or install a global logger (relais takes its
//! settings' overrides from the World, and only the real binary installs
//! its logger). A test that stops a service the others use (the machine's
//! broker, the mail servers, a cluster's nodes, PostgreSQL) never comes
//! here: it has a test binary of its own (`tests/broker.rs`,
//! `tests/mta.rs`, `tests/cluster.rs`, `tests/postgresql.rs`), and cargo
//! runs test binaries one after the other.

mod absence;
mod acknowledgement;
mod bounces;
mod broker;
mod consent;
mod contract;
mod delivery;
mod escalation;
mod events;
mod fail_closed;
mod follow_up;
mod forged_headers;
mod limits;
mod mail;
mod mail_tls;
mod monitoring;
mod operations;
mod patient_data;
mod probes;
mod provenance;
mod publishers;
mod registry;
mod registry_review;
mod report;
mod retries;
mod routing;
mod service;
mod settings;
mod slow_clients;
mod standby;
mod store;
mod systemd;
