//! The sealed copy of an alert that a référent may hand back: when the
//! acknowledgement pages are served, relais keeps each delivered alert in
//! the store, sealed (ChaCha20-Poly1305 under a key derived from
//! `ack.key_file` for this purpose alone), for as long as its links live
//! (`ack.link_ttl`). A référent who says "ne relève pas de notre service"
//! hands it back from the page, which has no alert to send on: the copy
//! is what the network's fallback référents are then emailed.
//!
//! The store holds the sealed bytes and never the key, so whoever reads
//! the store reads nothing of the alert; a key rotation keeps the copies
//! sealed with the previous key readable, as it keeps the links.

use ring::aead::{self, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// The HKDF label of the copies' key: a key of its own, so that no link
/// token is a copy and no copy a token.
const PURPOSE: &[u8] = b"relais alert copy v1";

/// Seals copies with the current key; opens them with the current key,
/// then the previous one.
pub struct CopySealer {
    current: LessSafeKey,
    previous: Option<LessSafeKey>,
    random: SystemRandom,
}

impl CopySealer {
    /// A sealer whose keys are derived from `secret` (`ack.key_file`'s
    /// bytes) and `previous` (`ack.previous_key_file`'s, during a rotation).
    pub fn new(secret: &[u8], previous: Option<&[u8]>) -> Self {
        Self {
            current: derive(secret),
            previous: previous.map(derive),
            random: SystemRandom::new(),
        }
    }

    /// `body` sealed under a fresh random nonce: the nonce, then the
    /// ciphertext and its tag. `None` when the random source fails.
    pub fn seal(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut sealed = body.to_vec();
        self.current
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .ok()?;
        let mut copy = Vec::with_capacity(NONCE_LEN + sealed.len());
        copy.extend_from_slice(&nonce);
        copy.extend_from_slice(&sealed);
        Some(copy)
    }

    /// The body `copy` seals, if relais sealed it with the current or the
    /// previous key.
    pub fn open(&self, copy: &[u8]) -> Option<Vec<u8>> {
        let (nonce, sealed) = copy.split_at_checked(NONCE_LEN)?;
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find_map(|key| {
                let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
                let mut sealed = sealed.to_vec();
                let body = key.open_in_place(nonce, Aad::empty(), &mut sealed).ok()?;
                Some(body.to_vec())
            })
    }
}

fn derive(secret: &[u8]) -> LessSafeKey {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(secret);
    let okm = prk
        .expand(&[PURPOSE], &aead::CHACHA20_POLY1305)
        // HKDF-SHA256 gives up to 8,160 bytes; the key is 32.
        .expect("a 32-byte key is within what HKDF-SHA256 can derive");
    LessSafeKey::new(UnboundKey::from(okm))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"SOS75-1","patient":{"name":"Mme Jeanne Durand"}}"#;

    #[test]
    fn a_copy_reads_nothing_in_clear_and_opens_with_its_key_or_the_previous_one() {
        let sealer = CopySealer::new(b"current key file", None);
        let rotated = CopySealer::new(b"next key file", Some(b"current key file"));
        let stranger = CopySealer::new(b"another key file", None);

        let copy = sealer.seal(BODY).unwrap();

        assert!(!copy.windows(6).any(|w| w == b"Jeanne"));
        assert_ne!(sealer.seal(BODY).unwrap(), copy, "a fresh nonce each time");
        assert_eq!(sealer.open(&copy).as_deref(), Some(BODY));
        assert_eq!(rotated.open(&copy).as_deref(), Some(BODY));
        assert_eq!(stranger.open(&copy), None);
        assert_eq!(sealer.open(&copy[..copy.len() - 1]), None);
    }

    #[test]
    fn a_copy_is_not_an_acknowledgement_token_nor_the_reverse() {
        // The same secret, another purpose: another key.
        const SECRET: &[u8] = b"the key file of both";
        let copies = CopySealer::new(SECRET, None);
        let copy = copies.seal(BODY).unwrap();
        // A token is a version byte (2), then a nonce and a sealed payload.
        let as_token = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            [&[2_u8][..], &copy].concat(),
        );

        let opened = super::super::token::Sealer::<super::super::token::Link>::new(SECRET)
            .open(&as_token, time::OffsetDateTime::now_utc());

        assert!(opened.is_err());
    }
}
