//! Real mail servers, for the tests that need the truth: a private Postfix
//! instance and a private Exim daemon, each on loopback ports of its own,
//! from Debian's packages, set up by the scripts in `testkit/mta/` (they
//! install what is missing and need root).
//!
//! Each server is set up once per test binary, in a folder of its own; a
//! shell beside it stops it and removes the folder when the test process
//! ends, however it ends. Every recipient's mail lands in
//! `<maildir>/<domain>/<local>/new/`, one file per message: a test counts
//! exactly what each address received.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Postfix,
    Exim,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Postfix => "postfix",
            Self::Exim => "exim",
        }
    }

    /// The prefix of its keys in `ports.env`.
    fn prefix(self) -> &'static str {
        match self {
            Self::Postfix => "PF_",
            Self::Exim => "EXIM_",
        }
    }
}

/// One running mail server.
pub struct Mta {
    kind: Kind,
    dir: PathBuf,
    /// `ports.env`, without the prefix: `PORT_PLAIN`, `LOG`, `CA`, …
    values: HashMap<String, String>,
    _keeper: Child,
}

/// The private Postfix (3.7): plain, STARTTLS required, strict HELO, an
/// access table refusing `refused@example.org`, end-of-data replies
/// delayed by 12 s and by 1.5 s, a 3 s idle timeout.
pub fn postfix() -> &'static Mta {
    static POSTFIX: OnceLock<Mta> = OnceLock::new();
    POSTFIX.get_or_init(|| Mta::set_up(Kind::Postfix, &[("PF_PORT_BASE", "25250")]))
}

/// The private Exim (4.96): plain with CHUNKING, PIPELINING and SMTPUTF8,
/// STARTTLS required, a 3 s idle timeout, a 12 s end-of-data delay.
pub fn exim() -> &'static Mta {
    static EXIM: OnceLock<Mta> = OnceLock::new();
    EXIM.get_or_init(|| Mta::set_up(Kind::Exim, &[("EXIM_PORT_BASE", "26250")]))
}

/// Another private Postfix, as [`postfix`], that relays every message to
/// the SMTP server on `127.0.0.1:<port>` instead of delivering it: a real
/// MTA in the path, in front of a test server that counts. Its own, not
/// shared: the chaos soak stops and starts it.
pub fn postfix_relaying_to(port: u16) -> Mta {
    let relay_to = format!("127.0.0.1:{port}");
    Mta::set_up(
        Kind::Postfix,
        &[
            ("PF_PORT_BASE", "27250"),
            ("PF_RELAY_TO", relay_to.as_str()),
        ],
    )
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mta").join(name)
}

impl Mta {
    fn set_up(kind: Kind, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("relais-{}-", kind.name()))
            .tempdir()
            .expect("a folder for the mail server")
            .keep();
        let setup = script(&format!("{}-setup", kind.name()));
        let output = Command::new(&setup)
            .arg(&dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run the mail server's setup script");
        assert!(
            output.status.success(),
            "{} failed (it needs root and Debian's packages):\n{}",
            setup.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let ports = std::fs::read_to_string(dir.join("ports.env")).expect("ports.env");
        let values = ports
            .lines()
            .filter_map(|line| line.split_once('='))
            .filter_map(|(key, value)| {
                Some((
                    key.strip_prefix(kind.prefix())?.to_owned(),
                    value.to_owned(),
                ))
            })
            .collect();
        // Stops the server and removes its folder when this process ends.
        let ctl = script(&format!("{}-ctl", kind.name()));
        let keeper = Command::new("sh")
            .args([
                "-c",
                r#"trap '' TERM INT
                   while kill -0 "$PPID" 2>/dev/null; do sleep 1; done
                   "$0" "$1" stop-all >/dev/null 2>&1 || "$0" "$1" abort >/dev/null 2>&1
                   sed -i "\|^$1/exim.conf\$|d" /etc/exim4/trusted_configs 2>/dev/null
                   sed -i "s|, $1/etc||" /etc/postfix/main.cf 2>/dev/null
                   rm -rf "$1""#,
            ])
            .arg(&ctl)
            .arg(&dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the mail server's keeper");
        Self {
            kind,
            dir,
            values,
            _keeper: keeper,
        }
    }

    /// A value of `ports.env`, e.g. `port("PORT_PLAIN")`.
    pub fn port(&self, key: &str) -> u16 {
        self.value(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a port"))
    }

    fn value(&self, key: &str) -> &str {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("{} has no {key}", self.kind.name()))
    }

    /// The test authority that signed the server's certificate (for
    /// `localhost`), for `smtp.ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        PathBuf::from(self.value("CA"))
    }

    /// Runs one command of the server's control script (`stop`, `start`,
    /// `abort`, `wait-empty`, …).
    pub fn ctl(&self, command: &str) {
        let ctl = script(&format!("{}-ctl", self.kind.name()));
        let output = Command::new(&ctl)
            .arg(&self.dir)
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("run the mail server's control script");
        assert!(
            output.status.success(),
            "{} {command} failed:\n{}",
            ctl.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Makes the listener on `port` (one whose end of DATA goes through
    /// the delay policy, `PORT_DELAY_SHORT` or `PORT_DELAY_LONG`) answer
    /// the end of each message after `delay`, from now on: a content
    /// filter that is slow, as a before-queue filter makes the reply wait.
    pub fn set_end_of_data_delay(&self, port: u16, delay: Duration) {
        // Written beside, then renamed: the policy never reads half a file.
        let folder = Path::new(self.value("POLICY"));
        let next = folder.join(format!(".delay.{port}"));
        std::fs::write(&next, format!("{:.3}", delay.as_secs_f64()))
            .expect("write the delay policy's file");
        std::fs::rename(&next, folder.join(format!("delay.{port}")))
            .expect("put the delay policy's file in place");
    }

    /// Hands the bounces that come back to relais's return paths
    /// (`bounces+<tag>@relais.test`) to `relais bounce`, run as the mail
    /// server runs its pipes (user nobody) on `world`'s settings.
    pub fn pipe_bounces_to(&self, world: &crate::World) {
        use std::fmt::Write as _;
        use std::os::unix::fs::PermissionsExt as _;
        let mut script = String::from("#!/bin/sh\nexec env -i");
        for (key, value) in &world.env {
            let _ = write!(script, " '{key}={value}'");
        }
        let _ = writeln!(
            script,
            " '{}' --config '{}' bounce --recipient \"$1\"",
            crate::relais_binary().display(),
            world.config.display()
        );
        let path = Path::new(self.value("DIR")).join("etc/relais-bounce");
        std::fs::write(&path, script).expect("write the bounce pipe's script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make the bounce pipe's script executable");
    }

    /// The messages `address` received so far, in no particular order.
    pub fn mails(&self, address: &str) -> Vec<Vec<u8>> {
        let address = address.to_lowercase();
        let (local, domain) = address.rsplit_once('@').expect("an address");
        let mailbox = Path::new(self.value("MAILDIR")).join(domain).join(local);
        ["new", "cur"]
            .iter()
            .filter_map(|folder| std::fs::read_dir(mailbox.join(folder)).ok())
            .flatten()
            .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
            .collect()
    }

    /// Waits until `address` received at least `count` messages, or
    /// `within` passed; returns what it received by then.
    pub async fn wait_for(&self, address: &str, count: usize, within: Duration) -> Vec<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mails = self.mails(address);
            if mails.len() >= count || tokio::time::Instant::now() >= deadline {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where the server's log is now, to read what comes after.
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(self.value("LOG")).map_or(0, |meta| meta.len())
    }

    /// The log's lines written since `mark`.
    pub fn log_since(&self, mark: u64) -> String {
        let mut text = String::new();
        if let Ok(mut log) = std::fs::File::open(self.value("LOG")) {
            let _ = log.seek(SeekFrom::Start(mark));
            let mut bytes = Vec::new();
            let _ = log.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }
}
