//! Publishing with the broker's word: every publish of relais (a retry, a
//! dead letter, a replay, `relais publish`) goes through a [`Publisher`],
//! on a channel of its own in confirm mode, `mandatory`, and returns only
//! once the broker confirmed that a queue holds the message.
//!
//! A confirm is always awaited with a timeout: a broker under a memory or
//! disk alarm stops confirming, and a publish must not hang an alert.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("publish failed: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm the publish within {0:?}")]
    Timeout(Duration),
    #[error("the broker refused the publish (nack)")]
    Nacked,
    #[error("the broker could not route the publish to any queue")]
    Unroutable,
}

/// Publishes on a channel in confirm mode and waits for the broker's word.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    confirm_timeout: Duration,
}

impl Publisher {
    /// Opens a channel of its own on `connection`, in confirm mode; each
    /// confirm is awaited at most `confirm_timeout`.
    ///
    /// # Errors
    /// When the broker refuses the channel or confirm mode.
    pub async fn open(
        connection: &Connection,
        confirm_timeout: Duration,
    ) -> Result<Self, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            channel,
            confirm_timeout,
        })
    }

    /// The channel, to declare the topology on before publishing.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes `mandatory`, and returns once the broker has confirmed that
    /// a queue holds the message.
    ///
    /// # Errors
    /// [`PublishError`] when the broker refused, could not route, did not
    /// confirm in time, or the channel failed.
    pub async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                body,
                properties,
            )
            .await?;
        let confirmation = tokio::time::timeout(self.confirm_timeout, confirm)
            .await
            .map_err(|_| PublishError::Timeout(self.confirm_timeout))??;
        if confirmation.is_nack() {
            return Err(PublishError::Nacked);
        }
        if confirmation.take_message().is_some() {
            return Err(PublishError::Unroutable);
        }
        Ok(())
    }

    /// Publishes each `(routing key, body)` to `exchange`, not
    /// `mandatory` (a topic exchange nobody listens to drops them, as it
    /// should), and returns once the broker confirmed them all: one round
    /// trip for the whole batch.
    ///
    /// # Errors
    /// [`PublishError`] when the broker refused one, did not confirm in
    /// time, or the channel failed.
    pub async fn publish_all_confirmed(
        &self,
        exchange: &str,
        messages: &[(&str, &[u8])],
        properties: &BasicProperties,
    ) -> Result<(), PublishError> {
        let mut confirms = Vec::with_capacity(messages.len());
        for (routing_key, body) in messages {
            let confirm = self
                .channel
                .basic_publish(
                    exchange.into(),
                    (*routing_key).into(),
                    BasicPublishOptions::default(),
                    body,
                    properties.clone(),
                )
                .await?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            let confirmation = tokio::time::timeout(self.confirm_timeout, confirm)
                .await
                .map_err(|_| PublishError::Timeout(self.confirm_timeout))??;
            if confirmation.is_nack() {
                return Err(PublishError::Nacked);
            }
        }
        Ok(())
    }
}
