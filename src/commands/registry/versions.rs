//! `relais registry versions` and `relais registry show DIGEST`: the
//! registries the store keeps (every one relais routed with, and those
//! published), so that the file behind a delivery (`relais audit` names
//! its digest) can be taken out again and questioned with `relais resolve
//! --registry`.

use std::io::Write as _;
use std::path::Path;

use anyhow::bail;
use clap::Args;
use time::format_description::well_known::Rfc3339;

use super::super::output::printable;
use crate::registry::short_digest;
use crate::settings::Settings;
use crate::store::AuditReader;

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The registry's digest, or its first digits (12 at least), as
    /// `relais audit` shows them.
    pub digest: String,
}

/// Digits a digest's prefix must have to name one registry.
const SHORTEST_PREFIX: usize = 12;

pub(super) async fn versions(config: Option<&Path>) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let reader = AuditReader::open(&settings.store).await?;
    let versions = reader.registry_versions().await?;
    if versions.is_empty() {
        println!("no registry kept yet");
    }
    for kept in &versions {
        let published = kept.published_at.map_or_else(
            || "-".to_owned(),
            |at| format!("published {}", at.format(&Rfc3339).unwrap_or_default()),
        );
        println!(
            "{}\t{}\tfirst used {}\t{published}",
            short_digest(&kept.digest),
            printable(kept.version.as_deref().unwrap_or("-")),
            kept.first_used.format(&Rfc3339).unwrap_or_default(),
        );
    }
    Ok(())
}

pub(super) async fn show(config: Option<&Path>, args: &ShowArgs) -> anyhow::Result<()> {
    let prefix = args
        .digest
        .trim()
        .trim_start_matches("sha256:")
        .to_ascii_lowercase();
    if prefix.len() < SHORTEST_PREFIX || !prefix.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        bail!(
            "give the registry's digest, or its first {SHORTEST_PREFIX} hexadecimal digits at least"
        );
    }
    let settings = Settings::load(config)?;
    let reader = AuditReader::open(&settings.store).await?;
    let matching: Vec<String> = reader
        .registry_versions()
        .await?
        .into_iter()
        .map(|kept| kept.digest)
        .filter(|digest| digest.starts_with(&prefix))
        .collect();
    let digest = match matching.as_slice() {
        [one] => one,
        [] => bail!(
            "the store keeps no registry sha256:{prefix}…: relais registry versions lists those it keeps"
        ),
        _ => bail!("several registries begin with {prefix}: give more digits"),
    };
    let Some(kept) = reader.kept_registry(digest).await? else {
        bail!("the registry sha256:{prefix}… is no longer in the store");
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&kept.body)?;
    out.flush()?;
    Ok(())
}
