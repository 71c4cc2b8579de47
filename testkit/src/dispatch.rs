//! A dispatch software as the tests play it: a RabbitMQ user of the test's
//! own (deleted when dropped), publishing alerts with its login in
//! `user_id`, as the broker checks it.

use lapin::BasicProperties;
use lapin::types::FieldTable;

use crate::broker::{Broker, rabbitmqctl};
use crate::world::World;

/// A RabbitMQ user of one test, with every permission on the default
/// virtual host; deleted when dropped.
pub struct DispatchUser {
    pub name: String,
}

impl DispatchUser {
    /// The user `relais-test-<test>-<pid>`.
    pub fn create(test: &str) -> Self {
        let name = format!("relais-test-{test}-{}", std::process::id());
        rabbitmqctl(&["add_user", &name, "dispatch-secret"]);
        rabbitmqctl(&["set_permissions", "-p", "/", &name, ".*", ".*", ".*"]);
        Self { name }
    }

    /// Its URL on the tests' broker.
    pub fn url(&self) -> String {
        format!(
            "amqp://{}:dispatch-secret@{}/%2f",
            self.name,
            crate::broker::broker_address()
        )
    }

    /// Publishes as the dispatch software does, its login in `user_id`.
    pub async fn publish(&self, world: &World, body: &[u8]) {
        self.publish_with_headers(world, body, FieldTable::default())
            .await;
    }

    /// As [`DispatchUser::publish`], with `headers` of its own making.
    pub async fn publish_with_headers(&self, world: &World, body: &[u8], headers: FieldTable) {
        let broker = Broker::connect_url(&self.url()).await;
        let properties = BasicProperties::default()
            .with_user_id(self.name.as_str().into())
            .with_headers(headers);
        broker
            .publish_with(&world.exchange, "orientation_sociale", body, properties)
            .await;
        let _ = broker.connection.close(200, "published".into()).await;
    }
}

impl Drop for DispatchUser {
    fn drop(&mut self) {
        let _ = crate::broker::rabbitmqctl_command()
            .args(["delete_user", &self.name])
            .output();
    }
}
