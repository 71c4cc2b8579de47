//! What each subcommand does. Output is for people (and, where said, for
//! scripts); it never shows a secret or a patient detail.

use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use lapin::protocol::AMQPSoftError;
use lapin::types::ShortString;
use lapin::{BasicProperties, Connection};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::signal::unix::{SignalKind, signal};

use crate::alert::{Alert, AlertId, Kind};
use crate::amqp::dead_letters::{self, DeadLetter, Selection};
use crate::amqp::topology::soft_error;
use crate::amqp::{PublishError, Publisher, Topology};
use crate::cli::{
    AuditArgs, Cli, Command, CoverageArgs, DeadLettersCommand, PendingArgs, PublishArgs,
    ResolveArgs,
};
use crate::coverage::Coverage;
use crate::geography::Geography;
use crate::registry::Registry;
use crate::settings::{Outbound, Settings};
use crate::store::{AuditReader, EscalationStep, Operation, OperationLog, UNACKNOWLEDGED_STEP};
use crate::territory::TerritoryError;

/// Runs the subcommand; errors are printed, and become exit code 1.
pub async fn dispatch(cli: Cli) -> ExitCode {
    let config = cli.config.as_deref();
    let result = match cli.command {
        Command::Run => run(config).await,
        Command::Check => check(config),
        Command::Resolve(args) => resolve(config, &args),
        Command::Coverage(args) => coverage(config, &args),
        Command::Publish(args) => publish(config, &args).await,
        Command::Audit(args) => audit(config, &args).await,
        Command::Pending(args) => pending(config, &args).await,
        Command::Status(args) => return status(config, args.json).await,
        Command::DeadLetters(command) => dead_letters(config, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("relais: {}", crate::telemetry::causes(&error));
            ExitCode::FAILURE
        }
    }
}

/// `relais run`: the daemon, until SIGTERM or SIGINT.
async fn run(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    crate::telemetry::init(&settings.log)?;
    for warning in &settings.warnings {
        tracing::warn!(%warning, "the settings need attention");
    }
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    let (reload, reloads) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            // A reload already pending covers this one too.
            let _ = reload.try_send(());
        }
    });
    crate::daemon::run(settings, shutdown, reloads).await
}

/// What `relais check` says of a registry without `[[publisher]]`.
pub const NO_PUBLISHER: &str = "the registry declares no [[publisher]]: any broker user may \
     publish alerts for any territory, as any association; declare each dispatch software's \
     RabbitMQ user (docs/operations.md, \"Publishers\")";

/// `relais check`: validates settings and registry, prints a summary.
fn check(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let geography = load_geography(&settings)?;
    let registry_path = &settings.registry.path;
    let registry = Registry::load(registry_path, &geography)?;
    print!("{}", check_report(&settings, registry_path, &registry));
    println!(
        "territories: {} — millésime {} ({})",
        settings.territories.path.display(),
        geography.millesime(),
        geography.source()
    );
    Ok(())
}

fn check_report(settings: &Settings, registry_path: &Path, registry: &Registry) -> String {
    let mut out = String::new();
    let amqp = &settings.amqp;
    let smtp = &settings.smtp;
    let _ = writeln!(out, "settings: valid");
    for warning in &settings.warnings {
        let _ = writeln!(out, "warning:  {warning}");
    }
    let _ = writeln!(
        out,
        "broker:   {} (exchange {}, queue {}, prefetch {})",
        amqp.redacted_url(),
        amqp.exchange,
        amqp.queue,
        amqp.prefetch
    );
    let from = smtp.from.as_deref().unwrap_or_default();
    match smtp.outbound() {
        Ok(Outbound::Smtp(server)) => {
            let _ = writeln!(
                out,
                "mail:     SMTP {}:{} (tls {:?}), from {from}",
                server.host, server.port, server.tls
            );
            let hello = crate::mail::mailer::hello(server.helo_name.as_deref());
            let origin = if server.helo_name.is_some() {
                "smtp.helo_name"
            } else {
                "the machine's; set smtp.helo_name to choose"
            };
            let _ = writeln!(out, "          EHLO {hello} ({origin})");
            let _ = writeln!(
                out,
                "          timeouts: {} per step, {} for the reply to the end of a message",
                humantime::format_duration(server.timeouts.step),
                humantime::format_duration(server.timeouts.final_reply)
            );
        }
        Ok(Outbound::Files(dir)) => {
            let _ = writeln!(
                out,
                "mail:     .eml files in {} (no SMTP), from {from}",
                dir.display()
            );
        }
        // Refused by the settings check before this report is made.
        Err(_) => {}
    }
    let summary = registry.summary();
    let _ = writeln!(
        out,
        "registry: {} — {} référent(s) in {} network(s), {} publisher(s)",
        registry_path.display(),
        summary.referents,
        summary.networks.len(),
        registry.publishers().len()
    );
    if !registry.publishers().declared() {
        let _ = writeln!(out, "warning:  {NO_PUBLISHER}");
    }
    for (name, network) in &summary.networks {
        let _ = writeln!(
            out,
            "  network {name:<14} {:>5} référent(s), {:>5} commune(s), {:>3} EPCI, {:>3} département(s), {:>2} région(s), {} fallback(s)",
            network.referents,
            network.communes,
            network.epcis,
            network.departements,
            network.regions,
            network.fallbacks
        );
    }
    let _ = writeln!(out, "routes:");
    let mut longest = Duration::ZERO;
    for (kind, networks) in &summary.routes {
        let escalation = registry.route_escalation(kind).map(|escalate| {
            let wait = |wait: Option<Duration>| {
                wait.map_or_else(
                    || "never".to_owned(),
                    |wait| humantime::format_duration(wait).to_string(),
                )
            };
            longest = longest.max(escalate.urgent.unwrap_or_default());
            longest = longest.max(escalate.normal.unwrap_or_default());
            format!(
                " (escalates after urgent {}, normal {})",
                wait(escalate.urgent),
                wait(escalate.normal)
            )
        });
        let _ = writeln!(
            out,
            "  {kind:<24} → {}{}",
            networks.join(", "),
            escalation.unwrap_or_default()
        );
    }
    if longest > Duration::ZERO && !settings.ack.enabled() {
        let _ = writeln!(
            out,
            "warning:  routes set escalate_after, but ack.listen is empty: without acknowledgement \
             links, alerts do not escalate"
        );
    } else if longest * 3 > settings.ack.link_ttl && settings.ack.enabled() {
        let _ = writeln!(
            out,
            "warning:  an escalation chain lasts up to {} (three waits of {}), longer than \
             ack.link_ttl ({}): its links expire before it ends",
            humantime::format_duration(longest * 3),
            humantime::format_duration(longest),
            humantime::format_duration(settings.ack.link_ttl)
        );
    }
    out
}

/// The official geography the settings name.
fn load_geography(settings: &Settings) -> anyhow::Result<Arc<Geography>> {
    Ok(Arc::new(Geography::load(&settings.territories.path)?))
}

/// `relais resolve`: who would receive an alert, one `<id> <email>` line each.
fn resolve(config: Option<&Path>, args: &ResolveArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let geography = load_geography(&settings)?;
    let registry_path = &settings.registry.path;
    let registry = Registry::load(registry_path, &geography)?;
    let kind = Kind::parse(&args.kind).map_err(|problem| anyhow::anyhow!("--kind {problem}"))?;
    let territory = geography
        .territory(args.commune.as_deref(), args.departement.as_deref())
        .map_err(|error| match error {
            TerritoryError::Departement => anyhow::anyhow!("--departement {error}"),
            TerritoryError::Missing | TerritoryError::Mismatch { .. } => anyhow::anyhow!("{error}"),
            _ => anyhow::anyhow!("--commune {error}"),
        })?;
    let at = match &args.at {
        Some(at) => OffsetDateTime::parse(at, &Rfc3339).map_err(|_| {
            anyhow::anyhow!("--at must be an RFC 3339 instant, e.g. 2026-12-25T10:00:00+01:00")
        })?,
        None => OffsetDateTime::now_utc(),
    };
    let place = geography.describe(territory);
    eprintln!("# {}", place.place);
    if let Some(mapped) = &place.mapped {
        eprintln!("# {mapped}");
    }

    let resolution = registry.resolve_at(&kind, territory, at)?;
    for matched in &resolution.matched {
        for referent in &matched.referents {
            println!("{} {}", referent.id(), referent.email());
        }
        for (deputy, absent) in &matched.standing_in {
            eprintln!(
                "# {} is absent that day: {} receives it in its place",
                absent.id(),
                deputy.id()
            );
        }
        eprintln!(
            "# network {}: {} référent(s) at the {} level",
            matched.network,
            matched.referents.len(),
            matched.level.as_str()
        );
    }
    if let Some(unmatched) = resolution.unmatched_error(territory) {
        eprintln!("# {unmatched}: such an alert would also be dead-lettered as unroutable");
    }
    Ok(())
}

/// `relais coverage`: what the registry covers of France.
fn coverage(config: Option<&Path>, args: &CoverageArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let geography = load_geography(&settings)?;
    let registry = Registry::load(&settings.registry.path, &geography)?;
    if let Some(network) = &args.network
        && !registry.summary().networks.contains_key(network)
    {
        bail!("--network {network:?} has no référent in the registry");
    }
    let coverage = Coverage::of(&registry, &geography, args.network.as_deref());
    if args.json {
        println!("{}", serde_json::to_string(&coverage)?);
    } else {
        print!("{}", coverage.text());
    }
    Ok(())
}

/// `relais publish`: validate, publish mandatory and persistent, report
/// success only once the broker confirmed.
async fn publish(config: Option<&Path>, args: &PublishArgs) -> anyhow::Result<()> {
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
    let geography = load_geography(&settings)?;
    let alert = Alert::parse(&body, settings.amqp.max_message_bytes, &geography)
        .context("not published: the alert is invalid")?;

    let amqp = &settings.amqp;
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

/// `relais audit`: deliveries from the store, one line each, oldest first:
/// time, alert id, référent id, address, Message-ID, the server's reply; or,
/// with `--operations`, the operators' commands.
async fn audit(config: Option<&Path>, args: &AuditArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let trace = Trace::open(&settings).await?;
    let reader = AuditReader::open(&settings.store).await?;
    let since = args
        .since
        .map(|since| {
            let since = time::Duration::try_from(since).context("--since is too long")?;
            anyhow::Ok(OffsetDateTime::now_utc() - since)
        })
        .transpose()?;
    if args.operations {
        let operations = reader.operations(since).await?;
        trace
            .done(&operations_command(args), operations.len())
            .await?;
        for operation in &operations {
            println!(
                "{}	{}	{}	{}",
                operation.recorded_at.format(&Rfc3339).unwrap_or_default(),
                printable(&operation.unix_user),
                printable(&operation.command),
                operation.count
            );
        }
        if operations.is_empty() {
            eprintln!("no operation recorded");
        }
        return Ok(());
    }
    let mut acknowledged = Vec::new();
    let mut escalation = Vec::new();
    let (deliveries, command) = match (&args.alert, since) {
        (Some(id), _) => {
            let id = AlertId::parse(id).map_err(|problem| anyhow::anyhow!("--alert {problem}"))?;
            acknowledged = reader.acknowledgements(&id).await?;
            escalation = reader.escalation(&id).await?;
            (reader.alert(&id).await?, format!("audit --alert {id}"))
        }
        (None, Some(since)) => (reader.since(since).await?, operations_command(args)),
        (None, None) => bail!("give --alert ID, --since DURATION or --operations"),
    };
    trace.done(&command, deliveries.len()).await?;
    for delivery in &deliveries {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            delivery.delivered_at.format(&Rfc3339).unwrap_or_default(),
            printable(&delivery.alert_id),
            printable(&delivery.referent_id),
            printable(&delivery.email),
            printable(&delivery.message_id),
            printable(&delivery.smtp_reply)
        );
    }
    for (referent, at) in &acknowledged {
        println!(
            "{}\t{}\t{}\tacknowledged",
            at.format(&Rfc3339).unwrap_or_default(),
            printable(args.alert.as_deref().unwrap_or_default()),
            printable(referent)
        );
    }
    for step in &escalation {
        let (at, state) = match step.done_at {
            Some(done) => (done, "escalation"),
            None => (step.due_at, "escalation due"),
        };
        println!(
            "{}	{}	{}	{state}",
            at.format(&Rfc3339).unwrap_or_default(),
            printable(args.alert.as_deref().unwrap_or_default()),
            step_name(step.step)
        );
    }
    if deliveries.is_empty() {
        eprintln!("no delivery recorded");
    }
    Ok(())
}

/// `relais pending`: the alerts emailed within `ack.link_ttl` that a
/// network has not acknowledged, oldest first: per network, who has it,
/// since when, and the next step of its escalation.
async fn pending(config: Option<&Path>, args: &PendingArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    if !settings.ack.enabled() {
        bail!("acknowledgements are off (ack.listen is empty): nothing is awaited");
    }
    let trace = Trace::open(&settings).await?;
    let reader = AuditReader::open(&settings.store).await?;
    let since = OffsetDateTime::now_utc() - settings.ack.link_ttl;
    let pending = reader.pending(since).await?;
    let command = if args.json {
        "pending --json"
    } else {
        "pending"
    };
    trace.done(command, pending.len()).await?;
    let rfc3339 = |at: OffsetDateTime| at.format(&Rfc3339).unwrap_or_default();
    if args.json {
        let alerts: Vec<serde_json::Value> = pending
            .iter()
            .map(|p| {
                serde_json::json!({
                    "alert_id": p.alert_id,
                    "network": p.network,
                    "referents": p.referents,
                    "since": rfc3339(p.since),
                    "next_escalation": p.next.map(|next| serde_json::json!({
                        "step": step_name(next.step),
                        "at": rfc3339(next.due_at),
                    })),
                    "unacknowledged_at": p.unacknowledged_at.map(rfc3339),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "pending": alerts }));
        return Ok(());
    }
    if pending.is_empty() {
        println!("no alert awaits an acknowledgement");
        return Ok(());
    }
    println!("SINCE	ALERT	NETWORK	RÉFÉRENTS	NEXT");
    for alert in &pending {
        let next = match (alert.next, alert.unacknowledged_at) {
            (_, Some(at)) => format!("unacknowledged since {}", rfc3339(at)),
            (Some(EscalationStep { step, due_at, .. }), None) => {
                format!("{} at {}", step_name(step), rfc3339(due_at))
            }
            (None, None) => "-".to_owned(),
        };
        println!(
            "{}	{}	{}	{}	{}",
            rfc3339(alert.since),
            printable(&alert.alert_id),
            printable(&alert.network),
            printable(&alert.referents.join(",")),
            next
        );
    }
    Ok(())
}

/// What a step of escalation does, as operators read it.
fn step_name(step: u8) -> &'static str {
    match step {
        1 => "deputies",
        2 => "fallback",
        UNACKNOWLEDGED_STEP => "unacknowledged",
        _ => "unknown",
    }
}

/// The command line of an `audit` without `--alert`, as recorded.
fn operations_command(args: &AuditArgs) -> String {
    let mut command = String::from("audit");
    if let Some(since) = args.since {
        let _ = write!(command, " --since {}", humantime::format_duration(since));
    }
    if args.operations {
        command.push_str(" --operations");
    }
    command
}

/// The record of one operator command in the store's operations log:
/// opened before the command does anything (a command that cannot be
/// recorded is not done), written when it is done.
struct Trace {
    log: OperationLog,
}

impl Trace {
    async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let log = OperationLog::open(&settings.store).await.with_context(|| {
            "operator commands on the dead letters and the audit trail are recorded in the \
             store, and it cannot be written: run this command as root or as the user relais \
             runs as"
        })?;
        Ok(Self { log })
    }

    async fn done(self, command: &str, count: usize) -> anyhow::Result<()> {
        let operation = Operation {
            recorded_at: OffsetDateTime::now_utc(),
            unix_user: operator(),
            command: command.to_owned(),
            count,
        };
        self.log
            .record(&operation)
            .await
            .context("the command was done, but could not be recorded in the store")
    }
}

/// The Unix user running this command, with the one who ran `sudo`.
fn operator() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let name = user_name(uid).unwrap_or_else(|| format!("uid {uid}"));
    match std::env::var("SUDO_USER") {
        Ok(by) if !by.is_empty() && by != name => format!("{name} (sudo: {by})"),
        _ => name,
    }
}

/// The name of the user `uid`, from the system's user database.
fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 4096];
    // SAFETY: `passwd` is plain data, written by getpwuid_r on success.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buffer` outlives the
    // read of `pw_name`, which points into it.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &raw mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &raw mut found,
        )
    };
    if status != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success `pw_name` is a NUL-terminated string in `buffer`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Connects to the broker for an operator's command.
async fn connect(settings: &Settings) -> anyhow::Result<Connection> {
    crate::amqp::connect(&settings.amqp, "relais (operator)").await
}

/// With a PostgreSQL store, which relais is active: the holder of the
/// standby lock, by the name its session gives (`relais on <host>`).
async fn active_instance(settings: &Settings) -> Option<String> {
    settings.store.url.as_ref()?;
    let key = crate::standby::lock_key(&settings.amqp.queue);
    Some(
        match crate::standby::lock_holder(&settings.store, key).await {
            Ok(Some((name, since))) => format!(
                "active: {} (connected since {}); any other relais of this queue is standby",
                printable(&name),
                since.format(&Rfc3339).unwrap_or_default()
            ),
            Ok(None) => "active: none (no relais holds the lock of this queue)".to_owned(),
            Err(error) => format!("active: unknown ({error})"),
        },
    )
}

/// `relais status`: the queues on one screen. Exit 2 when dead letters
/// wait (for cron and Nagios-style checks), 1 when the broker is unreachable.
async fn status(config: Option<&Path>, json: bool) -> ExitCode {
    let report = async {
        let settings = Settings::load(config)?;
        let topology = Topology::new(&settings);
        let connection = connect(&settings).await?;
        let queues = topology.inspect(&connection).await?;
        let oldest = dead_letters::list(&connection, &topology, 1)
            .await?
            .into_iter()
            .next();
        let _ = connection.close(200, "status".into()).await;
        let active = active_instance(&settings).await;
        anyhow::Ok((settings, topology, queues, oldest, active))
    };
    let (settings, topology, queues, oldest, active) = match report.await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("relais: {}", crate::telemetry::causes(&error));
            return ExitCode::FAILURE;
        }
    };
    let dead = queues
        .iter()
        .find(|queue| queue.name == topology.dead)
        .and_then(|queue| queue.messages)
        .unwrap_or(0);
    let oldest_age = oldest
        .as_ref()
        .and_then(DeadLetter::age)
        .map(|age| age.whole_seconds().max(0));
    if json {
        let value = serde_json::json!({
            "broker": { "url": settings.amqp.redacted_url(), "reachable": true },
            "active": active,
            "queues": queues,
            "dead_letters": dead,
            "oldest_dead_letter_age_seconds": oldest_age,
        });
        println!("{value}");
    } else {
        println!("broker: {} (reachable)", settings.amqp.redacted_url());
        if let Some(active) = &active {
            println!("{active}");
        }
        println!("{:<48} {:>9} {:>10}", "queue", "messages", "consumers");
        for queue in &queues {
            let count = |n: Option<u32>| n.map_or_else(|| "missing".to_owned(), |n| n.to_string());
            println!(
                "{:<48} {:>9} {:>10}",
                queue.name,
                count(queue.messages),
                count(queue.consumers)
            );
        }
        match oldest_age {
            Some(age) => println!(
                "oldest dead letter: {} ago",
                humantime::format_duration(std::time::Duration::from_secs(age.unsigned_abs()))
            ),
            None if dead > 0 => println!("oldest dead letter: age unknown"),
            None => println!("no dead letter"),
        }
    }
    if dead > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// `relais dead-letters list|replay|purge`.
async fn dead_letters(config: Option<&Path>, command: DeadLettersCommand) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let trace = Trace::open(&settings).await?;
    let topology = Topology::new(&settings);
    let connection = connect(&settings).await?;
    let result = match command {
        DeadLettersCommand::List { limit, json } => {
            let letters = dead_letters::list(&connection, &topology, limit).await?;
            trace.done("dead-letters list", letters.len()).await?;
            if json {
                println!("{}", serde_json::to_string(&letters)?);
            } else {
                print_letters(&letters);
            }
            Ok(())
        }
        DeadLettersCommand::Replay(args) => {
            let (selection, which) = match (args.all, args.id, args.reason) {
                (true, _, _) => (Selection::All, "--all".to_owned()),
                (_, Some(id), _) => (Selection::Id(id.clone()), format!("--id {id}")),
                (_, _, Some(reason)) => (Selection::Reason(reason), format!("--reason {reason}")),
                _ => bail!("give --all, --id ID or --reason REASON"),
            };
            let replayed = dead_letters::replay(
                &connection,
                &topology,
                &selection,
                settings.amqp.confirm_timeout,
                settings.amqp.login().as_deref(),
            )
            .await?;
            trace
                .done(
                    &format!("dead-letters replay {which}"),
                    replayed.taken.len(),
                )
                .await?;
            print_letters(&replayed.taken);
            println!(
                "replayed {} dead letter(s) to {}; {} left in {}",
                replayed.taken.len(),
                topology.queue,
                replayed.left,
                topology.dead
            );
            Ok(())
        }
        DeadLettersCommand::Purge(args) => {
            let (selection, which, option) = match (args.id, args.older_than) {
                (Some(id), _) => (
                    Selection::Id(id.clone()),
                    format!("of alert {id}"),
                    format!("--id {id}"),
                ),
                (None, Some(age)) => (
                    Selection::OlderThan(age),
                    format!("older than {}", humantime::format_duration(age)),
                    format!("--older-than {}", humantime::format_duration(age)),
                ),
                (None, None) => bail!("give --id ID or --older-than DURATION"),
            };
            if args.yes {
                let purged = dead_letters::purge(&connection, &topology, &selection).await?;
                trace
                    .done(
                        &format!("dead-letters purge {option} --yes"),
                        purged.taken.len(),
                    )
                    .await?;
                print_letters(&purged.taken);
                println!("purged {} dead letter(s) {which}", purged.taken.len());
                Ok(())
            } else {
                let letters = dead_letters::list(&connection, &topology, usize::MAX).await?;
                let chosen: Vec<DeadLetter> = letters
                    .into_iter()
                    .filter(|letter| selection.takes(letter))
                    .collect();
                trace
                    .done(&format!("dead-letters purge {option}"), chosen.len())
                    .await?;
                print_letters(&chosen);
                Err(anyhow::anyhow!(
                    "{} dead letter(s) {which} would be deleted for good; run again with --yes to do it",
                    chosen.len()
                ))
            }
        }
    };
    let _ = connection.close(200, "done".into()).await;
    result
}

fn print_letters(letters: &[DeadLetter]) {
    for letter in letters {
        println!(
            "{}\t{}\t{}\t{}\tattempts={}\t{}\t{}",
            printable(&letter.alert_id),
            printable(&letter.kind),
            printable(&letter.territory),
            printable(&letter.reason),
            letter
                .attempts
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            printable(letter.failed_at.as_deref().unwrap_or("-")),
            printable(&letter.error)
        );
    }
}

/// `text` with its control characters escaped (`\u{1b}`): a mail server's
/// reply or a header a publisher wrote cannot move the operator's cursor,
/// recolour the terminal or hide a line.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_shows_each_route_s_waits_and_warns_when_escalation_cannot_happen_or_outlives_links() {
        let registry = Registry::from_toml(
            r#"
            [[route]]
            kind = "orientation_sociale"
            networks = ["ccas"]
            escalate_after = { urgent = "12h" }

            [[referent]]
            id = "ccas-paris"
            network = "ccas"
            email = "social@paris.test"
            departements = ["75"]
            "#,
            crate::testing::france(),
        )
        .unwrap();
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/relais.toml");
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ack-key");
        std::fs::write(&key, [7u8; 32]).unwrap();
        let with = |env: &[(&str, &str)]| {
            let env = env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let settings = Settings::load_with_env(Some(&config), Some(env)).unwrap();
            check_report(&settings, Path::new("referents.toml"), &registry)
        };

        let off = with(&[]);
        let short_links = with(&[
            ("RELAIS__ACK__LISTEN", "127.0.0.1:8443"),
            ("RELAIS__ACK__PUBLIC_URL", "http://127.0.0.1:8443"),
            ("RELAIS__ACK__KEY_FILE", key.to_str().unwrap()),
            ("RELAIS__ACK__LINK_TTL", "1day"),
        ]);

        assert!(
            off.contains(
                "  orientation_sociale      → ccas (escalates after urgent 12h, normal never)\n"
            ),
            "{off}"
        );
        assert!(
            off.contains(
                "warning:  routes set escalate_after, but ack.listen is empty: without \
                 acknowledgement links, alerts do not escalate"
            ),
            "{off}"
        );
        assert!(
            short_links.contains(
                "warning:  an escalation chain lasts up to 1day 12h (three waits of 12h), longer \
                 than ack.link_ttl (1day): its links expire before it ends"
            ),
            "{short_links}"
        );
    }

    #[test]
    fn control_characters_are_escaped_in_what_the_cli_prints() {
        assert_eq!(printable("250 2.0.0 Ok"), "250 2.0.0 Ok");
        assert_eq!(
            printable("451 \u{1b}[2J\u{1b}[31mfake\rok\tx"),
            "451 \\u{1b}[2J\\u{1b}[31mfake\\u{d}ok\\u{9}x"
        );
        assert_eq!(printable("é à \u{85}"), "é à \\u{85}");
    }
}
