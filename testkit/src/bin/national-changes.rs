//! Writes a registry at national scale and a copy of it with changes, for
//! measuring `relais registry diff` (docs/performance.md):
//!
//! ```sh
//! cargo run -q -p relais-testkit --bin national-changes -- DIR [CHANGES]
//! ```
//!
//! gives `DIR/old.toml` and `DIR/new.toml` (500 changes by default), and
//! prints what changed.

use std::path::PathBuf;

use relais::geography::Geography;
use relais_testkit::national_changes::National;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: national-changes DIR [CHANGES]"))?,
    );
    let count: usize = args.next().map_or(Ok(500), |n| n.parse())?;
    let geography = Geography::built_in();
    let old = National::of(&geography);
    let (new, changes) = old.with_changes(count);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("old.toml"), old.to_toml())?;
    std::fs::write(dir.join("new.toml"), new.to_toml())?;
    println!(
        "{} référents in old.toml; new.toml: {} added, {} removed, {} changed, {} communes change recipients",
        old.referents.len(),
        changes.added,
        changes.removed,
        changes.changed,
        changes.communes.len()
    );
    Ok(())
}
