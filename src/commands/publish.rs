//! `relais publish`: an alert published the way the dispatch software
//! does (for smoke tests): checked first, then mandatory and persistent,
//! with the login as `user_id`, reported as published only once the broker
//! confirmed it. An invalid alert is never published (nor one without
//! `consent` while `consent.required` is on), nor one that relais would
//! refuse as `forbidden` because its login is not a declared publisher
//! (relais's own login never is one).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use lapin::BasicProperties;
use lapin::protocol::AMQPSoftError;
use lapin::types::ShortString;

use crate::alert::Alert;
use crate::amqp::topology::soft_error;
use crate::amqp::{PublishError, Publisher};
use crate::publisher::Publishers;
use crate::registry::Registry;
use crate::relay::CONSENT_REQUIRED;
use crate::settings::Settings;

/// Where `relais publish` reads the alert.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The alert (JSON); standard input when absent.
    #[arg(long, short, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `relais publish`: validate, publish mandatory and persistent, report
/// success only once the broker confirmed.
pub(super) async fn publish(config: Option<&Path>, args: &PublishArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let body = match &args.file {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("cannot read standard input")?;
            body
        }
    };
    let geography = super::load_geography(&settings)?;
    let alert = Alert::parse(&body, settings.amqp.max_message_bytes, &geography)
        .context("not published: the alert is invalid")?;
    if settings.consent.required && alert.consent().is_none() {
        bail!("not published: the alert is invalid: {CONSENT_REQUIRED}");
    }

    let amqp = &settings.amqp;
    let registry = Registry::load(&settings.registry.path, &geography)?;
    if let Err(refusal) = as_publisher(registry.publishers(), amqp.login().as_deref()) {
        bail!("not published: {refusal}");
    }
    let connection = crate::amqp::connect(amqp, "relais publish").await?;
    let publisher = Publisher::open(&connection, amqp.confirm_timeout).await?;
    let mut properties = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(alert.id().as_str()))
        .with_app_id(ShortString::from("relais-publish"));
    // Who publishes, vouched for by the broker (it checks `user_id` against
    // the login), as the dispatch software should do too.
    if let Some(login) = amqp.login() {
        properties = properties.with_user_id(ShortString::from(login));
    }
    let published = publisher
        .publish_confirmed(&amqp.exchange, alert.kind().as_str(), &body, properties)
        .await;
    let _ = connection.close(200, "published".into()).await;
    match published {
        Ok(()) => {
            println!(
                "published alert {} (kind {}, {}) to exchange {}: confirmed by the broker",
                alert.id(),
                alert.kind(),
                alert.territory(),
                amqp.exchange
            );
            Ok(())
        }
        Err(PublishError::Unroutable) => bail!(
            "not published: no queue is bound to exchange {} for routing key {}; start `relais run` \
             once, it declares its queue",
            amqp.exchange,
            alert.kind()
        ),
        Err(PublishError::Broker(error))
            if soft_error(&error, AMQPSoftError::NOTFOUND).is_some() =>
        {
            bail!(
                "not published: exchange {} does not exist on the broker; start `relais run` once, it \
             declares it",
                amqp.exchange
            )
        }
        Err(PublishError::Nacked) => bail!(
            "not published: the broker refused the alert (nack): the queue is full \
             (amqp.max_queue_length: relais is stopped or far behind) or the broker is short of \
             resources; publish it again later"
        ),
        Err(error) => Err(error).context("not published"),
    }
}

/// Whether an alert published as broker user `login` can pass the
/// registry's publishers: any user when none is declared; otherwise only
/// a declared one. relais's own login is never one (`relais check`
/// refuses it), so `relais publish` with relais's settings is refused
/// here, before the broker, instead of dead-lettered as `forbidden`.
///
/// # Errors
/// What to do instead, in words.
fn as_publisher(publishers: &Publishers, login: Option<&str>) -> Result<(), String> {
    if !publishers.declared() {
        return Ok(());
    }
    match login {
        Some(user) if publishers.declares(user) => Ok(()),
        Some(user) => Err(format!(
            "the registry declares its publishers, and broker user `{user}` is not one of them: \
             relais would dead-letter the alert as `forbidden`; publish with a declared \
             publisher's broker URL (RELAIS__AMQP__URL, or amqp.url_file)"
        )),
        None => Err(
            "the registry declares its publishers, and this login by certificate puts no user in \
             `user_id`: relais would dead-letter the alert as `forbidden`; publish with a \
             declared publisher's broker URL (RELAIS__AMQP__URL, or amqp.url_file)"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn publishers(extra: &str) -> Registry {
        Registry::from_toml(
            &format!(
                r#"
                [[route]]
                kind = "orientation_sociale"
                networks = ["ccas"]

                [[referent]]
                id = "ccas-paris"
                network = "ccas"
                email = "social@paris.test"
                departements = ["75"]
                {extra}
                "#
            ),
            crate::testing::france(),
        )
        .unwrap()
    }

    #[test]
    fn with_publishers_declared_only_a_declared_login_may_publish() {
        let open = publishers("");
        let declared = publishers(
            r#"
            [[publisher]]
            user = "sos75-dispatch"
            association = "SOS Médecins Paris"
            departements = ["75"]
            "#,
        );

        assert_eq!(as_publisher(open.publishers(), Some("relais")), Ok(()));
        assert_eq!(as_publisher(open.publishers(), None), Ok(()));
        assert_eq!(
            as_publisher(declared.publishers(), Some("sos75-dispatch")),
            Ok(())
        );
        let refused = as_publisher(declared.publishers(), Some("relais")).unwrap_err();
        assert!(
            refused.starts_with(
                "the registry declares its publishers, and broker user `relais` is not one of them"
            ),
            "{refused}"
        );
        assert!(as_publisher(declared.publishers(), None).is_err());
    }
}
