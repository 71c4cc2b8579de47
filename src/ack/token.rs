//! The links' tokens, sealed with ChaCha20-Poly1305 under a key derived
//! from `ack.key_file`'s secret, one key per purpose:
//!
//! - [`Link`], the acknowledgement link: which alert, for which référent,
//!   until when. It carries what the page shows beside (the alert's kind,
//!   territory code and date), so that the page needs no lookup; never
//!   patient data.
//! - [`AbsenceLink`], the absence page's link: which référent, until when.
//!   It is the référent's, not an alert's: every email (and every
//!   acknowledgement page) carries a fresh one.
//!
//! Each purpose has its own key, derived from the same secret under its own
//! label ([`Sealed::PURPOSE`]): a token sealed for one purpose is forged
//! for the other, so an acknowledgement link can never open the absence
//! page, nor the other way round.
//!
//! Sealed, a token reveals nothing but its length to whoever sees the URL
//! (a proxy's log, a mail scanner that rewrites links, a browser's
//! history): not the alert, the référent, the kind, the place or the time.
//! It cannot be forged or altered without the key, and one past its expiry
//! is refused. During a key rotation the previous key
//! (`ack.previous_key_file`) still opens the links it sealed; new links are
//! always sealed with the current key. This module never logs a token or
//! what it carries, and never reads a key file: it is given the secrets.

use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{self, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom as _, SystemRandom};
use thiserror::Error;
use time::OffsetDateTime;

/// The format's version, first byte of every token, in clear and bound to
/// the sealed payload (as its associated data). Version 1, HMAC-signed and
/// readable, is refused.
const VERSION: u8 = 2;

/// What a token can carry: its purpose, and its bytes.
pub trait Sealed: Sized {
    /// What the key file's secret keys for this kind of token, and only
    /// this: the HKDF label that derives its key, so that the same secret
    /// can never key two uses (or two versions of this format) with the
    /// same bytes.
    const PURPOSE: &'static [u8];
    /// Until when the token works (Unix time).
    fn expires_at(&self) -> i64;
    fn encode(&self) -> Vec<u8>;
    /// `None` for bytes that are not such a payload.
    fn decode(payload: &[u8]) -> Option<Self>;
}

/// What an acknowledgement link says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub alert_id: String,
    /// Who published the alert; empty until alerts are told apart by
    /// publisher. The pages do not read it yet.
    pub publisher: String,
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

/// What an absence page's link says: whose page it opens, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsenceLink {
    pub referent_id: String,
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

/// Why no token could be sealed: the system's random source gave no nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the system's random source gave no nonce for an acknowledgement link")]
pub struct SealError;

/// Seals tokens of one purpose (`T`) with the current key, and opens them
/// with the current key, then the previous one.
pub struct Sealer<T> {
    current: LessSafeKey,
    /// The key before the current one, kept during a rotation so that the
    /// links already sent still open; never used to seal.
    previous: Option<LessSafeKey>,
    random: SystemRandom,
    sealed: PhantomData<fn(T) -> T>,
}

impl<T: Sealed> Sealer<T> {
    /// A sealer whose key is derived from `secret` (the key file's bytes).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            current: derive::<T>(secret),
            previous: None,
            random: SystemRandom::new(),
            sealed: PhantomData,
        }
    }

    /// The same, also opening the links sealed with `secret`, the key
    /// being rotated out.
    #[must_use]
    pub fn with_previous(mut self, secret: &[u8]) -> Self {
        self.previous = Some(derive::<T>(secret));
        self
    }

    /// The token of `link`, sealed with the current key under a fresh
    /// random nonce: two tokens of one link differ.
    ///
    /// # Errors
    /// [`SealError`] when the system's random source fails.
    pub fn seal(&self, link: &T) -> Result<String, SealError> {
        let mut nonce = [0; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError)?;
        let mut sealed = link.encode();
        self.current
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([VERSION]),
                &mut sealed,
            )
            .map_err(|_| SealError)?;
        let mut token = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        token.push(VERSION);
        token.extend_from_slice(&nonce);
        token.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(token))
    }

    /// What `token` says, if relais sealed it for this purpose (with the
    /// current or the previous key) and it has not expired at `now`.
    ///
    /// # Errors
    /// [`TokenError::Forged`] for anything relais did not seal unchanged
    /// for this purpose, truncated or sealed with another key;
    /// [`TokenError::Expired`] for a link past its time.
    pub fn open(&self, token: &str, now: OffsetDateTime) -> Result<T, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Forged)?;
        let (&version, rest) = bytes.split_first().ok_or(TokenError::Forged)?;
        if version != VERSION {
            return Err(TokenError::Forged);
        }
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN).ok_or(TokenError::Forged)?;
        let link = std::iter::once(&self.current)
            .chain(&self.previous)
            .find_map(|key| {
                let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
                let mut sealed = sealed.to_vec();
                let payload = key
                    .open_in_place(nonce, Aad::from([VERSION]), &mut sealed)
                    .ok()?;
                T::decode(payload)
            })
            .ok_or(TokenError::Forged)?;
        if now.unix_timestamp() > link.expires_at() {
            return Err(TokenError::Expired);
        }
        Ok(link)
    }
}

/// The key of `T`'s tokens, derived from the key file's secret
/// (HKDF-SHA256, with `T`'s [`Sealed::PURPOSE`] as its label).
fn derive<T: Sealed>(secret: &[u8]) -> LessSafeKey {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(secret);
    let okm = prk
        .expand(&[T::PURPOSE], &aead::CHACHA20_POLY1305)
        // HKDF-SHA256 gives up to 8,160 bytes; the key is 32.
        .expect("a 32-byte key is within what HKDF-SHA256 can derive");
    LessSafeKey::new(UnboundKey::from(okm))
}

impl Sealed for Link {
    const PURPOSE: &'static [u8] = b"relais acknowledgement link token v2 (ChaCha20-Poly1305)";

    fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The link's fields, compactly: the two times as variable-length
    /// integers (5 bytes each today), then each text as its length and its
    /// bytes.
    fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(96);
        push_int(&mut payload, zigzag(self.expires_at));
        push_int(&mut payload, zigzag(self.emitted_at));
        for field in [
            &self.alert_id,
            &self.publisher,
            &self.referent_id,
            &self.kind,
            &self.departement,
        ] {
            push_text(&mut payload, field);
        }
        push_text(&mut payload, self.commune.as_deref().unwrap_or_default());
        payload
    }

    fn decode(mut payload: &[u8]) -> Option<Self> {
        let expires_at = unzigzag(next_int(&mut payload)?);
        let emitted_at = unzigzag(next_int(&mut payload)?);
        let (alert_id, publisher, referent_id, kind, departement, commune) = (
            next_text(&mut payload)?,
            next_text(&mut payload)?,
            next_text(&mut payload)?,
            next_text(&mut payload)?,
            next_text(&mut payload)?,
            next_text(&mut payload)?,
        );
        if !payload.is_empty() {
            return None;
        }
        Some(Self {
            alert_id,
            publisher,
            referent_id,
            kind,
            commune: (!commune.is_empty()).then_some(commune),
            departement,
            emitted_at,
            expires_at,
        })
    }
}

impl Sealed for AbsenceLink {
    const PURPOSE: &'static [u8] = b"relais absence page link token v1 (ChaCha20-Poly1305)";

    fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The expiry as a variable-length integer, then the référent's id as
    /// its length and its bytes.
    fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(32);
        push_int(&mut payload, zigzag(self.expires_at));
        push_text(&mut payload, &self.referent_id);
        payload
    }

    fn decode(mut payload: &[u8]) -> Option<Self> {
        let expires_at = unzigzag(next_int(&mut payload)?);
        let referent_id = next_text(&mut payload)?;
        payload.is_empty().then_some(Self {
            referent_id,
            expires_at,
        })
    }
}

/// LEB128: seven bits a byte, the high bit set on all but the last.
fn push_int(payload: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        payload.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    payload.push(value as u8);
}

fn next_int(payload: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = payload.split_first()?;
        *payload = rest;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn push_text(payload: &mut Vec<u8>, text: &str) {
    push_int(payload, text.len() as u64);
    payload.extend_from_slice(text.as_bytes());
}

fn next_text(payload: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(next_int(payload)?).ok()?;
    let (text, rest) = payload.split_at_checked(len)?;
    *payload = rest;
    String::from_utf8(text.to_vec()).ok()
}

/// A time as an unsigned integer, small for small magnitudes either side
/// of 1970.
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const PREVIOUS: [u8; 32] = [6; 32];

    fn link() -> Link {
        Link {
            alert_id: "SOS75-2026-000123".into(),
            publisher: String::new(),
            referent_id: "ccas-paris-13".into(),
            kind: "orientation_sociale".into(),
            commune: Some("75113".into()),
            departement: "75".into(),
            emitted_at: 1_795_000_000,
            expires_at: 1_797_600_000,
        }
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    #[test]
    fn a_sealed_link_opens_until_it_expires() {
        let sealer = Sealer::new(&KEY);
        let token = sealer.seal(&link()).unwrap();
        let before = at(1_797_600_000);
        assert_eq!(sealer.open(&token, before), Ok(link()));
        let after = before + time::Duration::seconds(1);
        assert_eq!(sealer.open(&token, after), Err(TokenError::Expired));
        assert!(!token.contains('+') && !token.contains('/') && !token.contains('='));
    }

    #[test]
    fn every_field_comes_back_as_it_was_sealed() {
        let sealer = Sealer::new(&KEY);
        let odd = Link {
            alert_id: "é".repeat(200),
            publisher: "sos-medecins-75".into(),
            referent_id: String::new(),
            kind: "k".into(),
            commune: None,
            departement: "2A".into(),
            emitted_at: -62_135_596_800,
            expires_at: i64::MAX,
        };

        for link in [link(), odd] {
            let token = sealer.seal(&link).unwrap();
            assert_eq!(sealer.open(&token, at(0)), Ok(link));
        }
    }

    #[test]
    fn a_token_decoded_shows_none_of_the_alert_the_referent_the_kind_or_the_place() {
        let sealer = Sealer::new(&KEY);

        let token = sealer.seal(&link()).unwrap();

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
        // Nor that two links are of one alert: each has its own nonce.
        assert_ne!(sealer.seal(&link()).unwrap(), token);
        // What it does show: its length, 135 characters for this link
        // (version, nonce, 72 bytes sealed, tag).
        assert_eq!(token.len(), 135);
    }

    #[test]
    fn a_link_sealed_with_the_previous_key_opens_during_a_rotation() {
        let before = Sealer::new(&PREVIOUS).seal(&link()).unwrap();
        let rotated = Sealer::new(&KEY).with_previous(&PREVIOUS);

        assert_eq!(rotated.open(&before, at(1_795_000_000)), Ok(link()));
        let after = rotated.seal(&link()).unwrap();
        assert_eq!(
            Sealer::new(&KEY).open(&after, at(1_795_000_000)),
            Ok(link())
        );
        assert_eq!(
            Sealer::<Link>::new(&PREVIOUS).open(&after, at(1_795_000_000)),
            Err(TokenError::Forged),
            "new links are sealed with the current key"
        );
        assert_eq!(
            rotated.open(&before, at(1_797_600_001)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_link_sealed_with_an_unknown_key_is_refused() {
        let rotated = Sealer::<Link>::new(&KEY).with_previous(&PREVIOUS);
        let foreign = Sealer::new(&[8; 32]).seal(&link()).unwrap();
        // The key file's bytes used directly, without the derivation.
        let mut raw = link().encode();
        LessSafeKey::new(UnboundKey::new(&aead::CHACHA20_POLY1305, &KEY).unwrap())
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0; NONCE_LEN]),
                Aad::from([VERSION]),
                &mut raw,
            )
            .unwrap();
        let raw = URL_SAFE_NO_PAD.encode([&[VERSION][..], &[0; NONCE_LEN], &raw].concat());

        for token in [foreign, raw] {
            assert_eq!(
                rotated.open(&token, at(1_795_000_000)),
                Err(TokenError::Forged)
            );
        }
    }

    #[test]
    fn a_token_with_any_byte_changed_or_cut_short_is_refused() {
        let sealer = Sealer::new(&KEY).with_previous(&PREVIOUS);
        let now = at(1_795_000_000);
        let bytes = URL_SAFE_NO_PAD
            .decode(sealer.seal(&link()).unwrap())
            .unwrap();

        for at in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut altered = bytes.clone();
                altered[at] ^= flip;
                let altered = URL_SAFE_NO_PAD.encode(&altered);
                assert_eq!(sealer.open(&altered, now), Err(TokenError::Forged), "{at}");
            }
            let cut = URL_SAFE_NO_PAD.encode(&bytes[..at]);
            assert_eq!(sealer.open(&cut, now), Err(TokenError::Forged), "{at}");
        }
        let longer = URL_SAFE_NO_PAD.encode([&bytes[..], &[0]].concat());
        for token in [longer.as_str(), "", "AAAA", "not a token!"] {
            assert_eq!(sealer.open(token, now), Err(TokenError::Forged), "{token}");
        }
    }

    fn absence() -> AbsenceLink {
        AbsenceLink {
            referent_id: "ccas-paris-13".into(),
            expires_at: 1_797_600_000,
        }
    }

    #[test]
    fn an_absence_link_opens_until_it_expires_and_during_a_rotation() {
        let sealer = Sealer::<AbsenceLink>::new(&KEY);
        let rotated = Sealer::<AbsenceLink>::new(&KEY).with_previous(&PREVIOUS);
        let before_rotation = Sealer::<AbsenceLink>::new(&PREVIOUS)
            .seal(&absence())
            .unwrap();

        let token = sealer.seal(&absence()).unwrap();

        assert_eq!(sealer.open(&token, at(1_797_600_000)), Ok(absence()));
        assert_eq!(
            sealer.open(&token, at(1_797_600_001)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            rotated.open(&before_rotation, at(1_795_000_000)),
            Ok(absence())
        );
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert!(!bytes.windows(13).any(|w| w == b"ccas-paris-13"));
    }

    #[test]
    fn an_acknowledgement_link_never_opens_the_absence_page_nor_the_other_way_round() {
        let (acks, absences) = (
            Sealer::<Link>::new(&KEY).with_previous(&PREVIOUS),
            Sealer::<AbsenceLink>::new(&KEY).with_previous(&PREVIOUS),
        );
        let ack = acks.seal(&link()).unwrap();
        let page = absences.seal(&absence()).unwrap();
        let now = at(1_795_000_000);

        assert_eq!(absences.open(&ack, now), Err(TokenError::Forged));
        assert_eq!(acks.open(&page, now), Err(TokenError::Forged));
        // Even the payload of one purpose sealed under the other's key
        // does not read as the other.
        assert_eq!(AbsenceLink::decode(&link().encode()), None);
        assert_eq!(Link::decode(&absence().encode()), None);
    }

    #[test]
    fn a_link_of_the_readable_format_relais_made_before_is_refused() {
        let sealer = Sealer::<Link>::new(&KEY);
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&1_797_600_000i64.to_be_bytes());
        v1.extend_from_slice(&1_795_000_000i64.to_be_bytes());
        for field in ["SOS75-2026-000123", "ccas-paris-13", "orientation_sociale"] {
            v1.push(field.len() as u8);
            v1.extend_from_slice(field.as_bytes());
        }
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &KEY), &v1);
        v1.extend_from_slice(tag.as_ref());

        assert_eq!(
            sealer.open(&URL_SAFE_NO_PAD.encode(v1), at(1_795_000_000)),
            Err(TokenError::Forged)
        );
    }
}
