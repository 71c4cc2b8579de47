//! The SQLite engine: one file on this machine, the default (nothing to
//! install). It runs the store's statements and returns rows; what the
//! rows mean is decided above it (`store/mod.rs`).
//!
//! WAL, `synchronous = FULL`. For the daemon, writes go to one dedicated
//! thread that owns the writing connection, one statement list at a time
//! in one transaction (the store's group commit hands it whole batches),
//! so every write is on disk before the alert is acked. Point reads (the
//! dedup check, a few microseconds) run on the caller's thread on a
//! read-only connection of their own: WAL lets readers in beside the
//! writer, and a reader sees every write committed before it starts. Long
//! reads (the pending alerts) open a connection of their own on a blocking
//! thread, so that they never hold up the dedup check.
//!
//! The operators' commands open the file directly instead: read-only to
//! read the audit trail, read-write to record what they did.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::schema::{STEPS, VERSION};
use super::value::{Row, Value};
use super::{Statement, StoreError};

/// Jobs waiting for the writer thread; bounded so that a stuck disk slows
/// the consumers instead of growing memory.
const QUEUE: usize = 1024;

/// A job for the writer thread; it answers itself.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The SQLite engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    /// Its file: long reads open a connection of their own to it.
    path: PathBuf,
    /// Where writes go.
    writer: Writer,
    /// For point reads, on the caller's thread.
    reader: Arc<Mutex<Connection>>,
}

#[derive(Clone)]
enum Writer {
    /// The daemon's: the thread that owns the writing connection.
    Thread(mpsc::Sender<Job>),
    /// A command's: the one connection, read-write, is the reader's.
    Direct,
    /// `relais audit`'s: nothing may be written.
    None,
}

impl Engine {
    /// The daemon's engine: creates the file if needed, brings its schema
    /// up to date and starts the writer thread.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or brought up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_folder(path)?;
        let connection = open_connection(path, OpenFlags::default())?;
        // Opened after the writer, which created the file and its WAL.
        let reader = open_connection(path, read_only())?;
        let (jobs, receiver) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("relais-store".into())
            .spawn(move || serve(connection, receiver))
            .map_err(StoreError::Thread)?;
        Ok(Self {
            path: path.to_owned(),
            writer: Writer::Thread(jobs),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Read-only access to an existing store, safe while the daemon writes.
    ///
    /// # Errors
    /// [`StoreError`] when the store does not exist or cannot be read.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            path: path.to_owned(),
            writer: Writer::None,
            reader: Arc::new(Mutex::new(open_connection(path, read_only())?)),
        })
    }

    /// One read-write connection, for a command (created if needed, its
    /// schema brought up to date).
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or brought up to date.
    pub fn open_direct(path: &Path) -> Result<Self, StoreError> {
        create_folder(path)?;
        Ok(Self {
            path: path.to_owned(),
            writer: Writer::Direct,
            reader: Arc::new(Mutex::new(open_connection(path, OpenFlags::default())?)),
        })
    }

    /// Runs the query `sql` on the caller's thread (a point read).
    pub fn read(&self, sql: &str, parameters: &[Value]) -> Result<Vec<Row>, StoreError> {
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(query(&reader, sql, parameters)?)
    }

    /// Runs the query `sql` on a blocking thread, on a connection that
    /// holds up no other read (a long read).
    pub async fn scan(
        &self,
        sql: &'static str,
        parameters: Vec<Value>,
    ) -> Result<Vec<Row>, StoreError> {
        let (path, reader, own) = (
            self.path.clone(),
            Arc::clone(&self.reader),
            matches!(self.writer, Writer::Thread(_)),
        );
        tokio::task::spawn_blocking(move || {
            if own {
                let connection = open_connection(&path, read_only())?;
                Ok(query(&connection, sql, &parameters)?)
            } else {
                let reader = reader.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(query(&reader, sql, &parameters)?)
            }
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Runs `statements` in one transaction; returns how many rows each
    /// changed.
    pub async fn write(&self, statements: Vec<Statement>) -> Result<Vec<u64>, StoreError> {
        match &self.writer {
            Writer::Thread(jobs) => {
                let (reply, answer) = oneshot::channel();
                let job: Job = Box::new(move |connection| {
                    let _ = reply.send(transaction(connection, &statements));
                });
                jobs.send(job).await.map_err(|_| StoreError::Closed)?;
                answer.await.map_err(|_| StoreError::Closed)?
            }
            Writer::Direct => {
                let mut connection = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
                transaction(&mut connection, &statements)
            }
            Writer::None => Err(StoreError::ReadOnly),
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Self::Null => ValueRef::Null,
            Self::Int(value) => ValueRef::Integer(*value),
            Self::Text(value) => ValueRef::Text(value.as_bytes()),
            Self::Blob(value) => ValueRef::Blob(value),
        }))
    }
}

fn value(index: usize, value: ValueRef<'_>) -> Result<Value, rusqlite::Error> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(value) => Value::Int(value),
        // No column of the store holds a real number.
        #[expect(clippy::cast_possible_truncation, reason = "never written by relais")]
        ValueRef::Real(value) => Value::Int(value as i64),
        ValueRef::Text(text) => Value::Text(
            std::str::from_utf8(text)
                .map_err(|error| rusqlite::Error::Utf8Error(index, error))?
                .to_owned(),
        ),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    })
}

fn query(
    connection: &Connection,
    sql: &str,
    parameters: &[Value],
) -> Result<Vec<Row>, rusqlite::Error> {
    let mut statement = connection.prepare_cached(sql)?;
    let columns = statement.column_count();
    bind(&mut statement, parameters)?;
    let mut rows = statement.raw_query();
    let mut read = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns)
            .map(|index| value(index, row.get_ref(index)?))
            .collect::<Result<Vec<Value>, _>>()?;
        read.push(Row(values));
    }
    Ok(read)
}

/// Binds `parameters` to `$1`, `$2`… by their numbers, as PostgreSQL does:
/// SQLite numbers a `$n` by where it first appears, so that a statement
/// naming `$4` before `$1` would bind them crosswise.
fn bind(statement: &mut rusqlite::Statement<'_>, parameters: &[Value]) -> rusqlite::Result<()> {
    for (number, parameter) in parameters.iter().enumerate() {
        if let Some(index) = statement.parameter_index(&format!("${}", number + 1))? {
            statement.raw_bind_parameter(index, parameter)?;
        }
    }
    Ok(())
}

fn transaction(
    connection: &mut Connection,
    statements: &[Statement],
) -> Result<Vec<u64>, StoreError> {
    let transaction = connection.transaction()?;
    let mut changed = Vec::with_capacity(statements.len());
    for (sql, parameters) in statements {
        let mut statement = transaction.prepare_cached(sql)?;
        bind(&mut statement, parameters)?;
        let rows = statement.raw_execute()?;
        changed.push(u64::try_from(rows).unwrap_or(u64::MAX));
    }
    transaction.commit()?;
    Ok(changed)
}

/// The writer thread: runs each job in turn, until every handle is gone.
fn serve(mut connection: Connection, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.blocking_recv() {
        job(&mut connection);
    }
}

fn read_only() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// Brings the store's schema up to date; returns the version it had (a
/// version past the last step is left alone: a newer relais wrote it).
fn migrate(connection: &Connection) -> Result<usize, rusqlite::Error> {
    let version = |connection: &Connection| -> Result<usize, rusqlite::Error> {
        let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
        Ok(usize::try_from(version).unwrap_or(usize::MAX))
    };
    let before = version(connection)?;
    if before >= VERSION {
        return Ok(before);
    }
    connection.execute_batch("BEGIN IMMEDIATE")?;
    // Read again under the write lock: another relais (or an operator's
    // command) that opened the store at the same time may have migrated it
    // while this one waited for the lock.
    let version = match version(connection) {
        Ok(version) if version >= VERSION => {
            connection.execute_batch("COMMIT")?;
            return Ok(version);
        }
        Ok(version) => version,
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            return Err(error);
        }
    };
    let applied = STEPS[version..]
        .iter()
        .try_for_each(|step| connection.execute_batch(step.sqlite))
        .and_then(|()| connection.pragma_update(None, "user_version", VERSION as i64));
    match applied {
        Ok(()) => connection.execute_batch("COMMIT").map(|()| version),
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let open = || -> Result<Connection, rusqlite::Error> {
        let connection = Connection::open_with_flags(path, flags)?;
        connection.busy_timeout(Duration::from_secs(5))?;
        // Each alert touches a few pages of the primary key; the system's
        // page cache is behind this one. (Default: 2 MiB.) The dedup check
        // reads one leaf per alert: the upper levels of the tree are all
        // its cache needs to hold.
        let cache_kib = if flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
            -128
        } else {
            -512
        };
        connection.pragma_update(None, "cache_size", cache_kib)?;
        if !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(None, "synchronous", "FULL")?;
        }
        Ok(connection)
    };
    let at = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let connection = open().map_err(at)?;
    if !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
        let version = migrate(&connection).map_err(at)?;
        if version > VERSION {
            return Err(StoreError::Newer {
                store: path.display().to_string(),
                version,
                known: VERSION,
            });
        }
    }
    Ok(connection)
}

/// Creates the folder of the SQLite file `path`, if it has one.
fn create_folder(path: &Path) -> Result<(), StoreError> {
    match path.parent().filter(|f| !f.as_os_str().is_empty()) {
        Some(folder) => std::fs::create_dir_all(folder).map_err(|source| StoreError::Folder {
            path: folder.to_owned(),
            source,
        }),
        None => Ok(()),
    }
}

/// When root records an operation in a store it had to create, the files
/// go to the owner of the store's folder (the service's user), so that the
/// daemon can still open them.
pub fn give_to_folder_owner(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Some(folder) = path.parent().and_then(|f| std::fs::metadata(f).ok()) else {
        return;
    };
    if folder.uid() == 0 {
        return;
    }
    let mut files = vec![path.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    for file in files {
        let owned_by_root = std::fs::metadata(&file).is_ok_and(|m| m.uid() == 0);
        if owned_by_root {
            let _ = std::os::unix::fs::chown(&file, Some(folder.uid()), Some(folder.gid()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_two_processes_create_at_once_is_migrated_once() {
        // Arrange: a new store, its write lock held by a first relais that
        // is about to migrate it; a second one starts meanwhile.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relais.db");
        let first = Connection::open(&path).unwrap();
        first.execute_batch("BEGIN IMMEDIATE").unwrap();
        let second = {
            let path = path.clone();
            std::thread::spawn(move || {
                let connection = Connection::open(&path).unwrap();
                connection.busy_timeout(Duration::from_secs(5)).unwrap();
                migrate(&connection)
            })
        };
        std::thread::sleep(Duration::from_millis(300));

        // Act: the first one migrates and commits; the second goes on.
        for step in STEPS {
            first.execute_batch(step.sqlite).unwrap();
        }
        first
            .pragma_update(None, "user_version", VERSION as i64)
            .unwrap();
        first.execute_batch("COMMIT").unwrap();
        let second = second.join().unwrap();

        // Assert: the second found the store up to date, and left it so.
        assert_eq!(second.unwrap(), VERSION);
        let version: i64 = first
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, VERSION as i64);
    }
}
