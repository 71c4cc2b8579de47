//! The acknowledgement link's token: which alert, for which référent, until
//! when, signed with `ack.key_file`'s secret (HMAC-SHA256). It carries
//! what the page shows beside (the alert's kind, territory code and date),
//! so that the page needs no lookup; never patient data. A token cannot be
//! forged or altered without the key, and one past its expiry is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use thiserror::Error;
use time::OffsetDateTime;

/// The format's version, first byte of every token.
const VERSION: u8 = 1;

/// What a link says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub alert_id: String,
    pub referent_id: String,
    pub kind: String,
    /// A commune code, or `None` with `departement` for a département alone.
    pub commune: Option<String>,
    pub departement: String,
    /// When the doctor emitted the alert (Unix time).
    pub emitted_at: i64,
    /// Until when the link works (Unix time).
    pub expires_at: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("the link is not one relais made")]
    Forged,
    #[error("the link has expired")]
    Expired,
}

/// Signs and reads tokens with one key.
pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The token of `link`.
    pub fn sign(&self, link: &Link) -> String {
        let mut payload = Vec::with_capacity(96);
        payload.push(VERSION);
        payload.extend_from_slice(&link.expires_at.to_be_bytes());
        payload.extend_from_slice(&link.emitted_at.to_be_bytes());
        for field in [
            &link.alert_id,
            &link.referent_id,
            &link.kind,
            &link.departement,
        ] {
            push(&mut payload, field);
        }
        push(&mut payload, link.commune.as_deref().unwrap_or_default());
        let tag = hmac::sign(&self.key, &payload);
        payload.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(payload)
    }

    /// What `token` says, if relais signed it and it has not expired at
    /// `now`.
    ///
    /// # Errors
    /// [`TokenError::Forged`] for anything relais did not sign unchanged,
    /// [`TokenError::Expired`] for a link past its time.
    pub fn read(&self, token: &str, now: OffsetDateTime) -> Result<Link, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Forged)?;
        let split = bytes.len().checked_sub(32).ok_or(TokenError::Forged)?;
        let (payload, tag) = bytes.split_at(split);
        hmac::verify(&self.key, payload, tag).map_err(|_| TokenError::Forged)?;
        let link = parse(payload).ok_or(TokenError::Forged)?;
        if now.unix_timestamp() > link.expires_at {
            return Err(TokenError::Expired);
        }
        Ok(link)
    }
}

fn push(payload: &mut Vec<u8>, field: &str) {
    let bytes = &field.as_bytes()[..field.len().min(255)];
    payload.push(bytes.len() as u8);
    payload.extend_from_slice(bytes);
}

fn parse(payload: &[u8]) -> Option<Link> {
    let (&version, rest) = payload.split_first()?;
    if version != VERSION {
        return None;
    }
    let (expires, rest) = rest.split_at_checked(8)?;
    let (emitted, mut rest) = rest.split_at_checked(8)?;
    let mut next = || -> Option<String> {
        let (&len, after) = rest.split_first()?;
        let (text, after) = after.split_at_checked(usize::from(len))?;
        rest = after;
        String::from_utf8(text.to_vec()).ok()
    };
    let (alert_id, referent_id, kind, departement, commune) =
        (next()?, next()?, next()?, next()?, next()?);
    Some(Link {
        alert_id,
        referent_id,
        kind,
        commune: (!commune.is_empty()).then_some(commune),
        departement,
        emitted_at: i64::from_be_bytes(emitted.try_into().ok()?),
        expires_at: i64::from_be_bytes(expires.try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            alert_id: "SOS75-2026-000123".into(),
            referent_id: "ccas-paris-13".into(),
            kind: "orientation_sociale".into(),
            commune: Some("75113".into()),
            departement: "75".into(),
            emitted_at: 1_795_000_000,
            expires_at: 1_797_600_000,
        }
    }

    #[test]
    fn a_signed_link_reads_back_until_it_expires() {
        let signer = Signer::new(&[7; 32]);
        let token = signer.sign(&link());
        let before = OffsetDateTime::from_unix_timestamp(1_797_600_000).unwrap();
        assert_eq!(signer.read(&token, before), Ok(link()));
        let after = before + time::Duration::seconds(1);
        assert_eq!(signer.read(&token, after), Err(TokenError::Expired));
        assert!(!token.contains('+') && !token.contains('/') && !token.contains('='));
    }

    #[test]
    fn a_token_decoded_shows_none_of_the_alert_the_referent_the_kind_or_the_place() {
        let signer = Signer::new(&[7; 32]);

        let token = signer.sign(&link());

        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for clear in [
            "SOS75-2026-000123",
            "ccas-paris-13",
            "orientation_sociale",
            "75113",
        ] {
            assert!(
                !bytes.windows(clear.len()).any(|w| w == clear.as_bytes()),
                "{clear} readable in the token"
            );
        }
    }

    #[test]
    fn an_altered_or_foreign_token_is_refused() {
        let signer = Signer::new(&[7; 32]);
        let now = OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap();
        let token = signer.sign(&link());
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[20] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(&bytes);
        let foreign = Signer::new(&[8; 32]).sign(&link());
        for token in [
            altered.as_str(),
            foreign.as_str(),
            "",
            "AAAA",
            "not a token!",
        ] {
            assert_eq!(signer.read(token, now), Err(TokenError::Forged), "{token}");
        }
    }
}
