//! The test emails that prove a référent's address (`relais registry
//! probe`): each with the mail server's answer, and when the office
//! confirmed receipt from the email's link. The link names the probe by a
//! random token, which is all the confirmation page knows: it shows an
//! address, never an alert.

use time::OffsetDateTime;

use super::value::Row;
use super::{Probe, Store, StoreError};

impl Store {
    /// Records a probe sent (or refused).
    ///
    /// # Errors
    /// [`StoreError`] if the write failed.
    pub async fn probe_sent(&self, probe: &Probe) -> Result<(), StoreError> {
        self.engine
            .execute(
                "INSERT INTO probes (token, referent_id, email, sent_at, refused, reply)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                vec![
                    probe.token.as_str().into(),
                    probe.referent_id.as_str().into(),
                    probe.email.as_str().into(),
                    probe.sent_at.into(),
                    i64::from(probe.refused).into(),
                    probe.reply.as_str().into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// The probe of `token`, if there is one.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn probe(&self, token: &str) -> Result<Option<Probe>, StoreError> {
        let rows = self
            .engine
            .read(
                "SELECT token, referent_id, email, sent_at, refused, reply, confirmed_at
                 FROM probes WHERE token = $1",
                vec![token.into()],
            )
            .await?;
        rows.into_iter().next().map(probe).transpose()
    }

    /// Records that the office confirmed receipt of the probe of `token`
    /// (the first confirmation stands); the probe, if there is one.
    ///
    /// # Errors
    /// [`StoreError`] if the write or the query fails.
    pub async fn confirm_probe(&self, token: &str) -> Result<Option<Probe>, StoreError> {
        self.engine
            .execute(
                "UPDATE probes SET confirmed_at = $2
                 WHERE token = $1 AND confirmed_at IS NULL",
                vec![token.into(), OffsetDateTime::now_utc().into()],
            )
            .await?;
        self.probe(token).await
    }

    /// The last probe of each référent and address, by référent.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn last_probes(&self) -> Result<Vec<Probe>, StoreError> {
        let rows = self
            .engine
            .scan(
                "SELECT token, referent_id, email, sent_at, refused, reply, confirmed_at
                 FROM probes AS p
                 WHERE sent_at = (SELECT MAX(sent_at) FROM probes AS q
                                  WHERE q.referent_id = p.referent_id AND q.email = p.email)
                 ORDER BY referent_id, email, token",
                vec![],
            )
            .await?;
        let mut probes: Vec<Probe> = rows.into_iter().map(probe).collect::<Result<_, _>>()?;
        // Two probes in one second: the one confirmed, else either.
        probes.dedup_by(|later, earlier| {
            let same = later.referent_id == earlier.referent_id && later.email == earlier.email;
            if same && earlier.confirmed_at.is_none() {
                earlier.confirmed_at = later.confirmed_at;
            }
            same
        });
        Ok(probes)
    }
}

fn probe(mut row: Row) -> Result<Probe, StoreError> {
    Ok(Probe {
        token: row.text(0)?,
        referent_id: row.text(1)?,
        email: row.text(2)?,
        sent_at: row.time(3)?,
        refused: row.int(4)? != 0,
        reply: row.text(5)?,
        confirmed_at: row.time_or_null(6)?,
    })
}
