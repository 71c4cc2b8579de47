//! The real `relais` binary as a child process: where cargo built it, the
//! lines it writes on stderr, the signals a service manager sends it, and
//! its exit. Nothing here starts relais (the [`crate::World`] does, with its
//! settings); this only watches and signals a process already started.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// The `relais` binary cargo built beside the running test or benchmark
/// (`target/<profile>/relais`; the test itself is in `deps/` below it).
pub fn relais_binary() -> PathBuf {
    let test = std::env::current_exe().expect("the test's own path");
    let profile = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary in target/<profile>/deps");
    profile.join("relais")
}

/// The lines relais writes on stderr, collected as they come.
#[derive(Clone, Default)]
pub struct Logs {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Logs {
    /// Starts collecting the child's stderr.
    pub fn collect(child: &mut Child) -> Self {
        use std::io::BufRead;
        let logs = Self::default();
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = logs.lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        });
        logs
    }

    /// Waits until `count` lines contain `text`; false if `within` passed.
    pub async fn wait_for(&self, text: &str, count: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.count(text) >= count {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Waits (30 s at most) for a line containing `text`; fails showing
    /// every line otherwise.
    pub async fn expect(&self, text: &str) {
        let seen = self.wait_for(text, 1, Duration::from_secs(30)).await;
        assert!(seen, "no log line contains {text:?}:\n{}", self.all());
    }

    pub fn count(&self, text: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(text))
            .count()
    }

    pub fn all(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

/// Sends a signal (`TERM`, `KILL`, `HUP`) to a process.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name}");
}

/// Waits for a process to exit, at most `within`.
pub async fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "relais did not exit within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a command printed, as text (lossily, so a test still shows bytes
/// that are not UTF-8).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
