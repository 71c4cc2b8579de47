//! `relais registry publish FILE`: checks a registry file as the daemon
//! would with these settings, then makes it the one every relais on the
//! PostgreSQL store routes with (each picks it up within
//! [`FOLLOW_EVERY`], without a restart), and records who did it.
//!
//! With a SQLite store there is one relais, and its `registry.path` (with
//! SIGHUP) decides: publishing is refused, saying so.

use std::path::{Path, PathBuf};

use clap::Args;

use super::super::trace::Trace;
use crate::live_registry::{FOLLOW_EVERY, Fences, fleet};
use crate::registry::short_digest;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The registry file (TOML, or JSON when its name ends in `.json`).
    pub file: PathBuf,
}

pub(super) async fn publish(config: Option<&Path>, args: &PublishArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    if settings.store.url.is_none() {
        anyhow::bail!(
            "the store is SQLite: one relais, which routes with registry.path; put the file \
             there and reload relais (systemctl reload relais, or SIGHUP)"
        );
    }
    let geography = super::super::load_geography(&settings)?;
    let read = fleet::read_file(&args.file, &geography, &Fences::from(&settings))?;
    let trace = Trace::open(&settings).await?;
    let before = trace.log().published_digest().await?;
    trace.log().publish_registry(&read.kept).await?;
    let command = format!(
        "registry publish sha256:{}",
        short_digest(&read.kept.digest)
    );
    trace.done(&command, 1).await?;
    let version = read
        .registry
        .version()
        .map_or_else(String::new, |version| format!(", version {version}"));
    println!(
        "published registry sha256:{} ({} référents{version})",
        short_digest(read.registry.digest()),
        read.registry.referents().len(),
    );
    match before {
        Some(before) if before == read.kept.digest => {
            println!("it was already the published one");
        }
        Some(before) => println!("in place of sha256:{}", short_digest(&before)),
        None => {}
    }
    println!(
        "every relais on this store routes with it within {}",
        humantime::format_duration(FOLLOW_EVERY)
    );
    Ok(())
}
