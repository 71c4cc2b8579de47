//! The store's schema, one step per release that changed it, each step
//! written for both engines under one version number, so that a table or
//! a column cannot exist in one engine only.
//!
//! A store is brought up to date at start-up, in one transaction. Its
//! version is SQLite's `user_version`, or the highest row of PostgreSQL's
//! `relais_schema` table. Steps are only ever added, never edited, and none
//! destroys data; a store whose version is past the last step was written
//! by a newer relais and is refused (`StoreError::Newer`).

/// One step of the schema, in each engine's words.
pub struct Step {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// The version a store has once every step is applied.
pub const VERSION: usize = STEPS.len();

/// The steps, first to last: step `n` brings a store to version `n`.
pub const STEPS: &[Step] = &[
    // 1. Who was emailed about which alert (written by every SQLite relais
    //    so far, hence `IF NOT EXISTS`).
    Step {
        sqlite: "CREATE TABLE IF NOT EXISTS deliveries (
                     alert_id     TEXT NOT NULL,
                     referent_id  TEXT NOT NULL,
                     email        TEXT NOT NULL,
                     message_id   TEXT NOT NULL,
                     smtp_reply   TEXT NOT NULL,
                     delivered_at INTEGER NOT NULL,
                     PRIMARY KEY (alert_id, referent_id)
                 ) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS deliveries_by_time ON deliveries (delivered_at);",
        postgres: "CREATE TABLE deliveries (
                       alert_id     TEXT NOT NULL,
                       referent_id  TEXT NOT NULL,
                       email        TEXT NOT NULL,
                       message_id   TEXT NOT NULL,
                       smtp_reply   TEXT NOT NULL,
                       delivered_at BIGINT NOT NULL,
                       PRIMARY KEY (alert_id, referent_id)
                   );
                   CREATE INDEX deliveries_by_time ON deliveries (delivered_at);",
    },
    // 2. The digest of the alert's content each email was about, so that
    //    another alert reusing the id is caught (NULL: recorded before).
    Step {
        sqlite: "ALTER TABLE deliveries ADD COLUMN digest BLOB;",
        postgres: "ALTER TABLE deliveries ADD COLUMN digest BYTEA;",
    },
    // 3. What operators did with the dead letters and the audit trail.
    Step {
        sqlite: "CREATE TABLE operations (
                     recorded_at INTEGER NOT NULL,
                     unix_user   TEXT NOT NULL,
                     command     TEXT NOT NULL,
                     count       INTEGER NOT NULL
                 );
                 CREATE INDEX operations_by_time ON operations (recorded_at);",
        postgres: "CREATE TABLE operations (
                       recorded_at BIGINT NOT NULL,
                       unix_user   TEXT NOT NULL,
                       command     TEXT NOT NULL,
                       count       BIGINT NOT NULL
                   );
                   CREATE INDEX operations_by_time ON operations (recorded_at);",
    },
    // 4. Who acknowledged which alert, from the link of its email.
    Step {
        sqlite: "CREATE TABLE acknowledgements (
                     alert_id        TEXT NOT NULL,
                     referent_id     TEXT NOT NULL,
                     acknowledged_at INTEGER NOT NULL,
                     PRIMARY KEY (alert_id, referent_id)
                 ) WITHOUT ROWID;
                 CREATE INDEX acknowledgements_by_time ON acknowledgements (acknowledged_at);",
        postgres: "CREATE TABLE acknowledgements (
                       alert_id        TEXT NOT NULL,
                       referent_id     TEXT NOT NULL,
                       acknowledged_at BIGINT NOT NULL,
                       PRIMARY KEY (alert_id, referent_id)
                   );
                   CREATE INDEX acknowledgements_by_time ON acknowledgements (acknowledged_at);",
    },
    // 5. The network of each email (an acknowledgement counts for its
    //    network), and the escalation chains: each step's due time and
    //    when it was carried out. The alert itself waits in the broker.
    Step {
        sqlite: "ALTER TABLE deliveries ADD COLUMN network TEXT;
                 CREATE TABLE escalations (
                     alert_id TEXT NOT NULL,
                     step     INTEGER NOT NULL,
                     due_at   INTEGER NOT NULL,
                     done_at  INTEGER,
                     PRIMARY KEY (alert_id, step)
                 ) WITHOUT ROWID;
                 CREATE INDEX escalations_by_time ON escalations (due_at);",
        postgres: "ALTER TABLE deliveries ADD COLUMN network TEXT;
                   CREATE TABLE escalations (
                       alert_id TEXT NOT NULL,
                       step     SMALLINT NOT NULL,
                       due_at   BIGINT NOT NULL,
                       done_at  BIGINT,
                       PRIMARY KEY (alert_id, step)
                   );
                   CREATE INDEX escalations_by_time ON escalations (due_at);",
    },
    // 6. An alert is its publisher's: two publishers may use one id
    //    (`deliveries`, `acknowledgements` and `escalations` keyed by the
    //    publisher too). The rows written before have publisher '' (not
    //    known), which every publisher's alert of that id still finds, so
    //    that nobody in flight across the upgrade is emailed twice.
    Step {
        sqlite: "CREATE TABLE deliveries_by_publisher (
                     publisher    TEXT NOT NULL DEFAULT '',
                     alert_id     TEXT NOT NULL,
                     referent_id  TEXT NOT NULL,
                     email        TEXT NOT NULL,
                     message_id   TEXT NOT NULL,
                     smtp_reply   TEXT NOT NULL,
                     delivered_at INTEGER NOT NULL,
                     digest       BLOB,
                     network      TEXT,
                     PRIMARY KEY (alert_id, publisher, referent_id)
                 ) WITHOUT ROWID;
                 INSERT INTO deliveries_by_publisher
                     (alert_id, referent_id, email, message_id, smtp_reply, delivered_at, digest,
                      network)
                     SELECT alert_id, referent_id, email, message_id, smtp_reply, delivered_at,
                            digest, network
                     FROM deliveries;
                 DROP TABLE deliveries;
                 ALTER TABLE deliveries_by_publisher RENAME TO deliveries;
                 CREATE INDEX deliveries_by_time ON deliveries (delivered_at);
                 CREATE TABLE acknowledgements_by_publisher (
                     publisher       TEXT NOT NULL DEFAULT '',
                     alert_id        TEXT NOT NULL,
                     referent_id     TEXT NOT NULL,
                     acknowledged_at INTEGER NOT NULL,
                     PRIMARY KEY (alert_id, publisher, referent_id)
                 ) WITHOUT ROWID;
                 INSERT INTO acknowledgements_by_publisher (alert_id, referent_id, acknowledged_at)
                     SELECT alert_id, referent_id, acknowledged_at FROM acknowledgements;
                 DROP TABLE acknowledgements;
                 ALTER TABLE acknowledgements_by_publisher RENAME TO acknowledgements;
                 CREATE INDEX acknowledgements_by_time ON acknowledgements (acknowledged_at);
                 CREATE TABLE escalations_by_publisher (
                     publisher TEXT NOT NULL DEFAULT '',
                     alert_id  TEXT NOT NULL,
                     step      INTEGER NOT NULL,
                     due_at    INTEGER NOT NULL,
                     done_at   INTEGER,
                     PRIMARY KEY (alert_id, publisher, step)
                 ) WITHOUT ROWID;
                 INSERT INTO escalations_by_publisher (alert_id, step, due_at, done_at)
                     SELECT alert_id, step, due_at, done_at FROM escalations;
                 DROP TABLE escalations;
                 ALTER TABLE escalations_by_publisher RENAME TO escalations;
                 CREATE INDEX escalations_by_time ON escalations (due_at);",
        postgres: "ALTER TABLE deliveries ADD COLUMN publisher TEXT NOT NULL DEFAULT '';
                   ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey;
                   ALTER TABLE deliveries ADD PRIMARY KEY (alert_id, publisher, referent_id);
                   ALTER TABLE acknowledgements ADD COLUMN publisher TEXT NOT NULL DEFAULT '';
                   ALTER TABLE acknowledgements DROP CONSTRAINT acknowledgements_pkey;
                   ALTER TABLE acknowledgements
                       ADD PRIMARY KEY (alert_id, publisher, referent_id);
                   ALTER TABLE escalations ADD COLUMN publisher TEXT NOT NULL DEFAULT '';
                   ALTER TABLE escalations DROP CONSTRAINT escalations_pkey;
                   ALTER TABLE escalations ADD PRIMARY KEY (alert_id, publisher, step);",
    },
    // 7. The lease that makes one relais of a queue the active one
    //    (`standby`: renewed every second, taken over once it expires),
    //    and the keys relais keeps for every relais on the store (the
    //    content digest's key): both shared by the hosts of a standby pair.
    Step {
        sqlite: "CREATE TABLE leases (
                     name        TEXT PRIMARY KEY,
                     holder      TEXT NOT NULL,
                     epoch       INTEGER NOT NULL,
                     acquired_at INTEGER NOT NULL,
                     expires_at  INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE TABLE keys (
                     name       TEXT PRIMARY KEY,
                     secret     BLOB NOT NULL,
                     created_at INTEGER NOT NULL
                 ) WITHOUT ROWID;",
        postgres: "CREATE TABLE leases (
                       name        TEXT PRIMARY KEY,
                       holder      TEXT NOT NULL,
                       epoch       BIGINT NOT NULL,
                       acquired_at BIGINT NOT NULL,
                       expires_at  BIGINT NOT NULL
                   );
                   CREATE TABLE keys (
                       name       TEXT PRIMARY KEY,
                       secret     BYTEA NOT NULL,
                       created_at BIGINT NOT NULL
                   );",
    },
    // 8. What the alert of each email said of the person's agreement, in
    //    short (`given:person:2026-11-22T07:10:00Z`,
    //    `not_required:vital_interest`, `none`); NULL: recorded before.
    Step {
        sqlite: "ALTER TABLE deliveries ADD COLUMN consent TEXT;",
        postgres: "ALTER TABLE deliveries ADD COLUMN consent TEXT;",
    },
    // 9. What each référent did about an alert once they had it (the
    //    "suite donnée", a code of the closed list `follow_up::FollowUp`):
    //    every choice kept with its time, the last one standing (`id`
    //    orders the choices of one second).
    Step {
        sqlite: "CREATE TABLE follow_ups (
                     id          INTEGER PRIMARY KEY,
                     publisher   TEXT NOT NULL DEFAULT '',
                     alert_id    TEXT NOT NULL,
                     referent_id TEXT NOT NULL,
                     outcome     TEXT NOT NULL,
                     recorded_at INTEGER NOT NULL
                 );
                 CREATE INDEX follow_ups_by_alert ON follow_ups (alert_id, publisher, referent_id);
                 CREATE INDEX follow_ups_by_time ON follow_ups (recorded_at);",
        postgres: "CREATE TABLE follow_ups (
                       id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                       publisher   TEXT NOT NULL DEFAULT '',
                       alert_id    TEXT NOT NULL,
                       referent_id TEXT NOT NULL,
                       outcome     TEXT NOT NULL,
                       recorded_at BIGINT NOT NULL
                   );
                   CREATE INDEX follow_ups_by_alert ON follow_ups (alert_id, publisher, referent_id);
                   CREATE INDEX follow_ups_by_time ON follow_ups (recorded_at);",
    },
    // 10. The absences référents declare themselves, from the link of their
    //    emails: who is away (`referent_id`), from and to which Paris dates
    //    (`YYYY-MM-DD`, included), which of its deputies stands in, who
    //    declared it and when, and when it was cancelled. Never deleted
    //    but by the store's pruning, once it ended (or was cancelled)
    //    more than `store.retention` ago.
    Step {
        sqlite: "CREATE TABLE declared_absences (
                     id           INTEGER PRIMARY KEY AUTOINCREMENT,
                     referent_id  TEXT NOT NULL,
                     from_date    TEXT NOT NULL,
                     to_date      TEXT NOT NULL,
                     deputy_id    TEXT,
                     declared_by  TEXT NOT NULL,
                     declared_at  INTEGER NOT NULL,
                     cancelled_at INTEGER
                 );
                 CREATE INDEX declared_absences_by_end ON declared_absences (to_date);",
        postgres: "CREATE TABLE declared_absences (
                       id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                       referent_id  TEXT NOT NULL,
                       from_date    TEXT NOT NULL,
                       to_date      TEXT NOT NULL,
                       deputy_id    TEXT,
                       declared_by  TEXT NOT NULL,
                       declared_at  BIGINT NOT NULL,
                       cancelled_at BIGINT
                   );
                   CREATE INDEX declared_absences_by_end ON declared_absences (to_date);",
    },
    // 11. Hand-backs: the sealed copy of each alert delivered while the
    //     acknowledgement pages are served (for as long as its links live),
    //     and the référents who said it is not theirs, until the network's
    //     fallback référents were emailed it.
    Step {
        sqlite: "CREATE TABLE alert_copies (
                     publisher  TEXT NOT NULL,
                     alert_id   TEXT NOT NULL,
                     sealed     BLOB NOT NULL,
                     expires_at INTEGER NOT NULL,
                     PRIMARY KEY (alert_id, publisher)
                 ) WITHOUT ROWID;
                 CREATE INDEX alert_copies_by_expiry ON alert_copies (expires_at);
                 CREATE TABLE handbacks (
                     publisher    TEXT NOT NULL,
                     alert_id     TEXT NOT NULL,
                     referent_id  TEXT NOT NULL,
                     requested_at INTEGER NOT NULL,
                     done_at      INTEGER,
                     PRIMARY KEY (alert_id, publisher, referent_id)
                 ) WITHOUT ROWID;",
        postgres: "CREATE TABLE alert_copies (
                       publisher  TEXT NOT NULL,
                       alert_id   TEXT NOT NULL,
                       sealed     BYTEA NOT NULL,
                       expires_at BIGINT NOT NULL,
                       PRIMARY KEY (alert_id, publisher)
                   );
                   CREATE INDEX alert_copies_by_expiry ON alert_copies (expires_at);
                   CREATE TABLE handbacks (
                       publisher    TEXT NOT NULL,
                       alert_id     TEXT NOT NULL,
                       referent_id  TEXT NOT NULL,
                       requested_at BIGINT NOT NULL,
                       done_at      BIGINT,
                       PRIMARY KEY (alert_id, publisher, referent_id)
                   );",
    },
    // 12. The registries relais routed with, by the SHA-256 of their file:
    //     each delivery names the one that chose its référent, and with a
    //     shared store the last one published is the fleet's.
    Step {
        sqlite: "ALTER TABLE deliveries ADD COLUMN registry TEXT;
                 CREATE TABLE registries (
                     digest       TEXT NOT NULL PRIMARY KEY,
                     version      TEXT,
                     format       TEXT NOT NULL,
                     body         BLOB NOT NULL,
                     first_used   INTEGER NOT NULL,
                     published_at INTEGER
                 ) WITHOUT ROWID;",
        postgres: "ALTER TABLE deliveries ADD COLUMN registry TEXT;
                   CREATE TABLE registries (
                       digest       TEXT NOT NULL PRIMARY KEY,
                       version      TEXT,
                       format       TEXT NOT NULL,
                       body         BYTEA NOT NULL,
                       first_used   BIGINT NOT NULL,
                       published_at BIGINT
                   );
                   CREATE INDEX registries_by_publication ON registries (published_at);",
    },
    // 13. The test emails `relais registry probe` sent to prove an
    //     address: the mail server's answer, and when the office confirmed
    //     receipt from the email's link (by its random token).
    Step {
        sqlite: "CREATE TABLE probes (
                     token        TEXT NOT NULL PRIMARY KEY,
                     referent_id  TEXT NOT NULL,
                     email        TEXT NOT NULL,
                     sent_at      INTEGER NOT NULL,
                     refused      INTEGER NOT NULL,
                     reply        TEXT NOT NULL,
                     confirmed_at INTEGER
                 ) WITHOUT ROWID;
                 CREATE INDEX probes_by_referent ON probes (referent_id, sent_at);",
        postgres: "CREATE TABLE probes (
                       token        TEXT NOT NULL PRIMARY KEY,
                       referent_id  TEXT NOT NULL,
                       email        TEXT NOT NULL,
                       sent_at      BIGINT NOT NULL,
                       refused      BIGINT NOT NULL,
                       reply        TEXT NOT NULL,
                       confirmed_at BIGINT
                   );
                   CREATE INDEX probes_by_referent ON probes (referent_id, sent_at);",
    },
    // 14. Bounces: the number each email's return path is tagged with
    //     (`smtp.bounce_address`), and what came back to it: per email and
    //     action (`failed`, `delayed`), the status code, and when the
    //     active relais sent the alert on.
    Step {
        sqlite: "ALTER TABLE deliveries ADD COLUMN return_path INTEGER;
                 CREATE INDEX deliveries_by_return_path ON deliveries (return_path);
                 CREATE TABLE bounces (
                     return_path INTEGER NOT NULL,
                     action      TEXT NOT NULL,
                     publisher   TEXT NOT NULL,
                     alert_id    TEXT NOT NULL,
                     referent_id TEXT NOT NULL,
                     network     TEXT,
                     status      TEXT NOT NULL,
                     received_at INTEGER NOT NULL,
                     acted_at    INTEGER,
                     PRIMARY KEY (return_path, action)
                 ) WITHOUT ROWID;
                 CREATE INDEX bounces_by_alert ON bounces (alert_id, publisher);",
        postgres: "ALTER TABLE deliveries ADD COLUMN return_path BIGINT;
                   CREATE INDEX deliveries_by_return_path ON deliveries (return_path);
                   CREATE TABLE bounces (
                       return_path BIGINT NOT NULL,
                       action      TEXT NOT NULL,
                       publisher   TEXT NOT NULL,
                       alert_id    TEXT NOT NULL,
                       referent_id TEXT NOT NULL,
                       network     TEXT,
                       status      TEXT NOT NULL,
                       received_at BIGINT NOT NULL,
                       acted_at    BIGINT,
                       PRIMARY KEY (return_path, action)
                   );
                   CREATE INDEX bounces_by_alert ON bounces (alert_id, publisher);",
    },
    // 15. The convention's yearly report: one row per alert per network it
    //     went to ('' for an alert dead-lettered before any network), kept
    //     `store.report_retention` (13 months) where deliveries are kept
    //     30 days. Only what is not about a person: the alert's pseudonym
    //     (a keyed hash of its publisher and id, never the id), its
    //     publisher, network, département and kind, the times of its life,
    //     codes. No référent, address, patient or free text.
    Step {
        sqlite: "CREATE TABLE report_facts (
                     alert           TEXT NOT NULL,
                     network         TEXT NOT NULL,
                     publisher       TEXT NOT NULL,
                     departement     TEXT,
                     kind            TEXT,
                     received_at     INTEGER NOT NULL,
                     delivered_at    INTEGER,
                     bounced_at      INTEGER,
                     dead_reason     TEXT,
                     acknowledged_at INTEGER,
                     escalated       INTEGER NOT NULL DEFAULT 0,
                     unacknowledged  INTEGER NOT NULL DEFAULT 0,
                     outcome         TEXT,
                     PRIMARY KEY (alert, network)
                 ) WITHOUT ROWID;
                 CREATE INDEX report_facts_by_time ON report_facts (received_at);",
        postgres: "CREATE TABLE report_facts (
                       alert           TEXT NOT NULL,
                       network         TEXT NOT NULL,
                       publisher       TEXT NOT NULL,
                       departement     TEXT,
                       kind            TEXT,
                       received_at     BIGINT NOT NULL,
                       delivered_at    BIGINT,
                       bounced_at      BIGINT,
                       dead_reason     TEXT,
                       acknowledged_at BIGINT,
                       escalated       BIGINT NOT NULL DEFAULT 0,
                       unacknowledged  BIGINT NOT NULL DEFAULT 0,
                       outcome         TEXT,
                       PRIMARY KEY (alert, network)
                   );
                   CREATE INDEX report_facts_by_time ON report_facts (received_at);",
    },
    // 16. The network of the référent who acknowledged, as the registry
    //     said at the click: the acknowledgement stops its network's chain
    //     even when its email's record is not in the store (a click before
    //     the group commit, or a record lost with the store between the
    //     server's "250" and its write). NULL: recorded before.
    Step {
        sqlite: "ALTER TABLE acknowledgements ADD COLUMN network TEXT;",
        postgres: "ALTER TABLE acknowledgements ADD COLUMN network TEXT;",
    },
];

/// The first relais with a PostgreSQL store created the whole schema of
/// step 5 at once and numbered it 1 in `relais_schema`. Such a store is at
/// version 5: a version of 1 with the `escalations` table (which only
/// step 5 makes) is read as 5.
pub const POSTGRES_FIRST_RELEASE: usize = 5;
