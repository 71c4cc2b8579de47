//! The broker side: everything relais does on RabbitMQ.
//!
//! - [`connection`]: `amqp://` or `amqps://`, one way to connect for the
//!   daemon and the operators' commands;
//! - [`topology`]: the exchanges and queues, declared at each connection;
//! - [`consumer`]: the consume loop, bounded by the prefetch, supervised and
//!   rebuilt when the connection drops; it hands each delivery to the relay;
//! - [`settle`]: the relay's [`Outcome`](crate::outcome::Outcome) as broker
//!   actions: publish (retry, dead letter) with a confirm, then ack;
//! - [`publisher`]: the one way relais publishes, with the broker's confirm;
//! - [`headers`]: the `x-relais-*` vocabulary, written and read in one place;
//! - [`status`]: each alert's fate, published to `events.exchange`;
//! - [`dead_letters`]: the operators' tools on `<queue>.dead`.
//!
//! It never decides what happens to an alert: `relay` does.

pub mod connection;
pub mod consumer;
pub mod dead_letters;
pub mod headers;
pub mod publisher;
pub mod settle;
pub mod status;
pub mod topology;

pub use connection::connect;
pub use publisher::{PublishError, Publisher};
pub use topology::Topology;
