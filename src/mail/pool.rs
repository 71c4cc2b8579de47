//! The pool of SMTP connections: at most `smtp.pool_size` at once, the idle
//! ones kept and reused, checked before reuse after a pause.
//!
//! A connection returns to the pool after a complete exchange: a success,
//! or a refusal ended with `RSET`. Any other way out (a broken connection,
//! a reply that did not come in time, a send cancelled at shutdown) drops
//! it, so a connection is never reused in the middle of a transaction. A
//! connection that leaves the pool in good order (idle too long, at
//! shutdown) is closed with `QUIT`. The pool tells `health` when the server turns out unusable
//! as configured (TLS or AUTH refused), and when a connection opens again.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lettre::address::Envelope;
use tokio::sync::Semaphore;

use crate::fence::Fence;
use crate::health::Health;
use crate::mail::classify::{SendError, classify};
use crate::mail::smtp::{self, Connection, Server};

/// An idle connection older than this is checked (NOOP) before reuse: the
/// server may have closed it meanwhile.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(2);
/// How long that check may take before the connection is given up for a
/// new one.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// An idle connection older than this is closed (`QUIT`) rather than
/// reused: well before servers' own idle limits (Postfix's and Exim's are
/// 5 minutes), so that relais, not the server, ends the session.
pub const MAX_IDLE: Duration = Duration::from_secs(60);

/// Connections to one SMTP server: at most `slots` at once, the idle ones
/// kept for reuse.
pub struct SmtpPool {
    server: Server,
    /// Told when the server turns out unusable as configured, and when a
    /// connection opens again.
    health: Arc<Health>,
    slots: Semaphore,
    idle: Mutex<Vec<(Connection, Instant)>>,
    /// Whether this relais may still hand messages over (`fence`).
    fence: Fence,
}

impl SmtpPool {
    pub fn new(server: Server, slots: usize, health: Arc<Health>, fence: Fence) -> Self {
        Self {
            server,
            health,
            slots: Semaphore::new(slots),
            idle: Mutex::new(Vec::new()),
            fence,
        }
    }

    /// Hands one email to the server on a pooled connection.
    ///
    /// # Errors
    /// [`SendError`], classified by [`classify`].
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<smtp::Reply, SendError> {
        // The semaphore is never closed, so acquiring cannot fail.
        let _slot = self.slots.acquire().await;
        let mut connection = match self.reusable().await {
            Some(connection) => connection,
            None => self.open().await?,
        };
        // If this future is dropped (shutdown), `connection` is dropped
        // with it, closing the socket: it never returns to the pool.
        match connection.send(envelope, email, &self.fence).await {
            Ok(reply) => {
                self.lock().push((connection, Instant::now()));
                Ok(reply)
            }
            Err(failure) => {
                if connection.recover(&failure).await {
                    self.lock().push((connection, Instant::now()));
                }
                Err(classify(failure))
            }
        }
    }

    /// Closes (`QUIT`) the connections idle for longer than [`MAX_IDLE`].
    pub async fn expire_idle(&self) {
        let expired: Vec<Connection> = {
            let mut idle = self.lock();
            let (expired, kept): (Vec<_>, Vec<_>) = idle
                .drain(..)
                .partition(|(_, since)| since.elapsed() > MAX_IDLE);
            *idle = kept;
            expired
                .into_iter()
                .map(|(connection, _)| connection)
                .collect()
        };
        join_all(expired.into_iter().map(Connection::quit)).await;
    }

    /// Closes (`QUIT`) every idle connection, at shutdown.
    pub async fn close(&self) {
        let idle: Vec<Connection> = self.lock().drain(..).map(|(c, _)| c).collect();
        join_all(idle.into_iter().map(Connection::quit)).await;
    }

    async fn open(&self) -> Result<Connection, SendError> {
        match Connection::open(&self.server).await {
            Ok(connection) => {
                self.health.smtp_usable();
                Ok(connection)
            }
            Err(error) => {
                if error.is_setup() {
                    self.health.smtp_unusable(format!(
                        "the mail server {}:{} cannot be used as configured: {error}",
                        self.server.host, self.server.port
                    ));
                }
                Err(classify(error))
            }
        }
    }

    async fn reusable(&self) -> Option<Connection> {
        loop {
            let (mut connection, since) = self.lock().pop()?;
            let idle = since.elapsed();
            if idle > MAX_IDLE {
                connection.quit().await;
                continue;
            }
            if idle < CHECK_AFTER_IDLE
                || tokio::time::timeout(CHECK_TIMEOUT, connection.is_alive())
                    .await
                    .unwrap_or(false)
            {
                return Some(connection);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Connection, Instant)>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
