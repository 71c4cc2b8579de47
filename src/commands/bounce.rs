//! `relais bounce`: one bounce message on standard input, as a mail
//! server's pipe hands it over (a Postfix `pipe` transport, an Exim `pipe`
//! transport), with the envelope recipient it came to.
//!
//! The recipient's tag names the email it returns (`mail::return_path`);
//! the message says what happened: a delivery status notification (RFC
//! 3464) per recipient, else, for the servers that send none, the one
//! enhanced status code its text gives. A failure for good is recorded for
//! the active relais to send the alert on; a delay is recorded and shown;
//! anything else changes nothing.
//!
//! Its exit status is the mail server's (`sysexits.h`): 0 when the bounce
//! was read (recorded, already recorded, or nothing to record); 65 for a
//! message that is not a readable bounce; 67 for a recipient that is not a
//! return path of this relais's (another address, a forged tag, another
//! relais's, an email no longer kept); 75 when it cannot be recorded now
//! (the store out of reach, or the email it returns sent moments ago and
//! not recorded yet): the mail server keeps the bounce and tries again, so
//! none is lost; 78 when relais is not set to read bounces.
//! It never prints what the bounce quotes (addresses, the remote server's
//! words): the alert's id, the référent's id and the status code only.

use std::io::Read as _;
use std::process::ExitCode;

use clap::Args;
use time::OffsetDateTime;

use crate::bounce::{Action, Bounce, MAX_SIZE, Status};
use crate::mail::{ReturnPaths, return_path};
use crate::settings::Settings;
use crate::store::{BounceAction, Store};

#[derive(Debug, Args)]
pub struct BounceArgs {
    /// The envelope recipient the bounce came to: Postfix's
    /// `${original_recipient}`, Exim's `$local_part$local_part_suffix@$domain`.
    #[arg(long)]
    pub recipient: String,
}

/// `sysexits.h`: what the mail server does with the bounce next.
const EX_DATAERR: u8 = 65;
const EX_NOUSER: u8 = 67;
const EX_TEMPFAIL: u8 = 75;
const EX_CONFIG: u8 = 78;

/// Why a bounce changed nothing, and what the mail server should do.
struct Refused {
    status: u8,
    why: String,
}

fn refused(status: u8, why: impl Into<String>) -> Refused {
    Refused {
        status,
        why: why.into(),
    }
}

/// Reads the bounce on standard input and records what it says.
pub async fn bounce(config: Option<&std::path::Path>, args: &BounceArgs) -> ExitCode {
    match read_and_record(config, args).await {
        Ok(said) => {
            println!("relais: {said}");
            ExitCode::SUCCESS
        }
        Err(Refused { status, why }) => {
            eprintln!("relais: {why}");
            ExitCode::from(status)
        }
    }
}

async fn read_and_record(
    config: Option<&std::path::Path>,
    args: &BounceArgs,
) -> Result<String, Refused> {
    let settings = Settings::load(config).map_err(|error| {
        refused(
            EX_TEMPFAIL,
            format!("cannot read the settings ({error}); the bounce is kept by the mail server"),
        )
    })?;
    let Some(address) = settings
        .smtp
        .bounce_address()
        .map_err(|error| refused(EX_CONFIG, error))?
    else {
        return Err(refused(
            EX_CONFIG,
            "relais does not read bounces: smtp.bounce_address is not set",
        ));
    };
    let raw = read_stdin()?;
    let said = Bounce::parse(&raw).map_err(|error| {
        refused(
            EX_DATAERR,
            format!("not a readable bounce: {error}; nothing changed"),
        )
    })?;
    let store = Store::open(&settings.store).await.map_err(|error| {
        refused(
            EX_TEMPFAIL,
            format!("cannot open the store ({error}); the bounce is kept by the mail server"),
        )
    })?;
    let key = store.key("bounce").await.map_err(|error| {
        refused(
            EX_TEMPFAIL,
            format!("cannot read the store ({error}); the bounce is kept by the mail server"),
        )
    })?;
    let number = ReturnPaths::new(address, &key)
        .read(&args.recipient)
        .map_err(|error| refused(EX_NOUSER, format!("{error}; nothing changed")))?;
    let returned = store
        .returned_email(number)
        .await
        .map_err(|error| {
            refused(
                EX_TEMPFAIL,
                format!("cannot read the store ({error}); the bounce is kept by the mail server"),
            )
        })?
        .ok_or_else(|| not_kept(number))?;
    let Some((action, status)) = what_happened(&said) else {
        return Ok(format!(
            "the message says of alert {} to référent {} neither a failure nor a delay; \
             nothing changed",
            returned.alert_id, returned.referent_id
        ));
    };
    let status = status.to_string();
    let recorded = store
        .record_bounce(&returned, action, &status, OffsetDateTime::now_utc())
        .await
        .map_err(|error| {
            refused(
                EX_TEMPFAIL,
                format!(
                    "cannot record the bounce ({error}); the bounce is kept by the mail server"
                ),
            )
        })?;
    let what = format!(
        "{} {status} for alert {} to référent {}",
        action.as_str(),
        returned.alert_id,
        returned.referent_id
    );
    Ok(match (recorded, action) {
        (false, _) => format!("{what} was recorded already; nothing changed"),
        (true, BounceAction::Failed) => {
            format!("{what} recorded: the alert is sent on to the deputies or the fallback")
        }
        (true, BounceAction::Delayed) => format!("{what} recorded"),
    })
}

/// Why no email kept is tagged with `number`, which this relais's key
/// signed: an email too recent to be recorded yet (the record follows the
/// server's acceptance by a moment, and a bounce may come back sooner):
/// the mail server tries again; else one forgotten (`store.retention`),
/// or a bounce replayed long after: refused.
fn not_kept(number: u64) -> Refused {
    let age = OffsetDateTime::now_utc() - return_path::made_at(number);
    if age < NOT_RECORDED_YET {
        refused(
            EX_TEMPFAIL,
            "the email this bounce returns is not recorded yet; the mail server tries again",
        )
    } else {
        refused(
            EX_NOUSER,
            "no email of relais's is tagged so any more (older than store.retention); \
             nothing changed",
        )
    }
}

/// How long after its email a bounce may find the email not recorded
/// yet: a record waits at most for one group commit of the store, but a
/// relais that stopped between the server's acceptance and the record
/// never records it (RFC 1047's window), and its bounces are then refused
/// after this.
const NOT_RECORDED_YET: time::Duration = time::Duration::minutes(10);

/// Standard input, refused unread past [`MAX_SIZE`].
fn read_stdin() -> Result<Vec<u8>, Refused> {
    let mut raw = Vec::new();
    let limit = u64::try_from(MAX_SIZE).unwrap_or(u64::MAX) + 1;
    std::io::stdin()
        .lock()
        .take(limit)
        .read_to_end(&mut raw)
        .map_err(|error| {
            refused(
                EX_TEMPFAIL,
                format!("cannot read the bounce on standard input: {error}"),
            )
        })?;
    if raw.len() > MAX_SIZE {
        return Err(refused(
            EX_DATAERR,
            format!(
                "the message is over {MAX_SIZE} bytes: not a bounce of relais's; nothing changed"
            ),
        ));
    }
    Ok(raw)
}

/// What a bounce says of relais's email (which had one recipient): a
/// failure (`Action: failed`) before a delay; for a bounce without a
/// report, its one status code: permanent a failure, transient a delay.
/// `None`: it reports neither (a success report, an automatic reply).
fn what_happened(bounce: &Bounce) -> Option<(BounceAction, Status)> {
    match bounce {
        Bounce::Report(report) => {
            let first = |wanted: Action| {
                report
                    .recipients
                    .iter()
                    .find(|r| r.action == wanted)
                    .map(|r| r.status)
            };
            first(Action::Failed)
                .map(|status| (BounceAction::Failed, status))
                .or_else(|| first(Action::Delayed).map(|status| (BounceAction::Delayed, status)))
        }
        Bounce::Unstructured { status } => match status {
            Some(status) if status.is_permanent() => Some((BounceAction::Failed, *status)),
            Some(status) if status.is_transient() => Some((BounceAction::Delayed, *status)),
            _ => None,
        },
    }
}
