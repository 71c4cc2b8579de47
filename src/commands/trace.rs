//! The record of each operator command on the dead letters, the escalation
//! copies and the audit trail, in the store's operations log: when, which
//! Unix user (with the one who ran `sudo`), what, how many. A command that
//! cannot be recorded is not done; this module never records a message's
//! content.

use anyhow::Context;
use time::OffsetDateTime;

use crate::settings::Settings;
use crate::store::{Operation, OperationLog};

/// The record of one operator command in the store's operations log:
/// opened before the command does anything (a command that cannot be
/// recorded is not done), written when it is done.
pub(super) struct Trace {
    log: OperationLog,
}

impl Trace {
    pub(super) async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let log = OperationLog::open(&settings.store).await.with_context(|| {
            "operator commands on the dead letters, the escalation copies and the audit trail \
             are recorded in the store, and it cannot be written: run this command as root or \
             as the user relais runs as"
        })?;
        Ok(Self { log })
    }

    /// The store, to record what the command changed there.
    pub(super) fn log(&self) -> &OperationLog {
        &self.log
    }

    pub(super) async fn done(self, command: &str, count: usize) -> anyhow::Result<()> {
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
