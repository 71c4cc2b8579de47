//! The return path's tag (VERP): each email leaves with the envelope sender
//! `<local>+<tag>@<domain>`, built from the operator's bounce address
//! `<local>@<domain>`, so that a bounce, sent back to that envelope sender,
//! says which email it returns even when it says nothing else.
//!
//! The tag holds no readable data: a 64-bit email number (random, chosen by
//! the caller) and the first 8 bytes of an HMAC-SHA256 of it, 16 bytes
//! written as 26 characters of lowercase base32 without padding (RFC 4648's
//! alphabet; lowercase because mail servers often case-fold local parts).
//! A tag that anyone could write (a number without its MAC) would let a
//! stranger mark any email as bounced; [`BounceAddress::read`] refuses it.

use ring::hmac;
use thiserror::Error;

/// RFC 4648's base32 alphabet, lowercase.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters of a tag: 128 bits in 5-bit characters.
pub const TAG_LEN: usize = 26;
/// RFC 5321, 4.5.3.1.1: the longest local part, in octets.
const LOCAL_PART_MAX: usize = 64;
/// What the MAC covers before the number, so that a key shared with
/// another use of HMAC cannot sign a tag there.
const CONTEXT: &[u8] = b"relais bounce tag v1\0";

/// The operator's bounce address (`smtp.bounce_address`), checked so that
/// every return path built from it is a valid address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceAddress {
    local: String,
    domain: String,
}

/// Why a recipient is not a return path of this relais's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TagError {
    /// Another local part or another domain: not a bounce of relais's.
    #[error("not this relais's bounce address")]
    NotOurs,
    /// The bounce address with no tag, or a tag that is not 26 base32
    /// characters.
    #[error("the bounce address's tag is missing or malformed")]
    Malformed,
    /// A well-formed tag whose MAC does not match: written by someone
    /// without the key (or by a relais with another key).
    #[error("the bounce address's tag is not signed by this relais")]
    Forged,
}

impl BounceAddress {
    /// Reads `<local>@<domain>`: a local part of letters, digits and
    /// `!#$%&'*-/=?^_`{|}~.` (dots not first, last or doubled) without `+`,
    /// short enough that `+` and the tag fit RFC 5321's 64 octets, and a
    /// domain of letters, digits, `-` and dots.
    ///
    /// # Errors
    /// A sentence for the operator naming the rule broken.
    pub fn parse(address: &str) -> Result<Self, String> {
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err("smtp.bounce_address must be an address, local@domain".into());
        };
        if local.contains('+') {
            return Err(
                "smtp.bounce_address must have no `+` in its local part: relais adds `+` and a tag to it"
                    .into(),
            );
        }
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*-/=?^_`{|}~".contains(c);
        if local.is_empty()
            || !local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(atext))
        {
            return Err(
                "smtp.bounce_address's local part must be letters, digits and \
                 !#$%&'*-/=?^_`{|}~, with dots between them"
                    .into(),
            );
        }
        let longest = LOCAL_PART_MAX - 1 - TAG_LEN;
        if local.len() > longest {
            return Err(format!(
                "smtp.bounce_address's local part is {} characters: relais adds `+` and a \
                 {TAG_LEN}-character tag, and a local part may be {LOCAL_PART_MAX} octets \
                 (RFC 5321), so it may be {longest} at most",
                local.len()
            ));
        }
        let label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if domain.len() > 253 || !domain.split('.').all(label) {
            return Err(
                "smtp.bounce_address's domain must be a domain name in ASCII (letters, digits, \
                 `-`, dots)"
                    .into(),
            );
        }
        Ok(BounceAddress {
            local: local.to_owned(),
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// The envelope sender for the email numbered `number`:
    /// `<local>+<tag>@<domain>`.
    pub fn return_path(&self, number: u64, key: &hmac::Key) -> String {
        let mut tag = [0u8; 16];
        tag[..8].copy_from_slice(&number.to_be_bytes());
        tag[8..].copy_from_slice(&mac(number, key));
        format!("{}+{}@{}", self.local, encode(&tag), self.domain)
    }

    /// The email number that a bounce's envelope recipient names, case
    /// and surrounding angle brackets ignored.
    ///
    /// # Errors
    /// [`TagError::NotOurs`] for another address, [`TagError::Malformed`]
    /// for the bounce address without a valid tag, [`TagError::Forged`]
    /// when the tag's MAC does not match (compared in constant time).
    pub fn read(&self, recipient: &str, key: &hmac::Key) -> Result<u64, TagError> {
        let recipient = recipient.trim();
        let recipient = recipient
            .strip_prefix('<')
            .and_then(|inner| inner.strip_suffix('>'))
            .unwrap_or(recipient);
        let (local, domain) = recipient.rsplit_once('@').ok_or(TagError::NotOurs)?;
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return Err(TagError::NotOurs);
        }
        let (base, tag) = match local.split_once('+') {
            Some((base, tag)) => (base, Some(tag)),
            None => (local, None),
        };
        if !base.eq_ignore_ascii_case(&self.local) {
            return Err(TagError::NotOurs);
        }
        let tag = decode(tag.ok_or(TagError::Malformed)?).ok_or(TagError::Malformed)?;
        let number = u64::from_be_bytes(tag[..8].try_into().map_err(|_| TagError::Malformed)?);
        if equal_in_constant_time(&tag[8..], &mac(number, key)) {
            Ok(number)
        } else {
            Err(TagError::Forged)
        }
    }
}

/// The first 8 bytes of HMAC-SHA256 over the context and the number. 8
/// bytes, not 32: the whole tag must fit a local part. A forger has one
/// chance in 2^64 per guess, and each guess costs them a bounce.
fn mac(number: u64, key: &hmac::Key) -> [u8; 8] {
    let mut context = hmac::Context::with_key(key);
    context.update(CONTEXT);
    context.update(&number.to_be_bytes());
    let tag = context.sign();
    let mut truncated = [0u8; 8];
    truncated.copy_from_slice(&tag.as_ref()[..8]);
    truncated
}

/// `ring::hmac::verify` checks a whole 32-byte tag; for the truncated one,
/// every byte is compared whatever the first difference.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    let difference = a
        .iter()
        .zip(b)
        .fold(0u8, |difference, (x, y)| difference | (x ^ y));
    a.len() == b.len() && std::hint::black_box(difference) == 0
}

fn encode(bytes: &[u8; 16]) -> String {
    let mut text = String::with_capacity(TAG_LEN);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            text.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        text.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    text
}

/// The 16 bytes of a tag, case ignored; `None` unless it is exactly 26
/// characters of the alphabet whose last 2 unused bits are zero (one
/// spelling per tag).
fn decode(text: &str) -> Option<[u8; 16]> {
    if text.len() != TAG_LEN {
        return None;
    }
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let value = ALPHABET
            .iter()
            .position(|&letter| letter == c.to_ascii_lowercase())?;
        buffer = (buffer << 5) | value as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *bytes.get_mut(filled)? = (buffer >> bits) as u8;
            filled += 1;
        }
        buffer &= (1 << bits) - 1;
    }
    (filled == 16 && buffer == 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[byte; 32])
    }

    fn address() -> BounceAddress {
        BounceAddress::parse("bounces@relais.example.org").unwrap()
    }

    #[test]
    fn a_return_path_reads_back_as_its_email_number() {
        let address = address();
        for number in [0, 1, 0x0123_4567_89ab_cdef, u64::MAX] {
            let return_path = address.return_path(number, &key(7));

            assert_eq!(address.read(&return_path, &key(7)), Ok(number));
        }
    }

    #[test]
    fn a_return_path_is_the_bounce_address_with_a_26_character_lowercase_tag() {
        let return_path = address().return_path(42, &key(7));

        let (local, domain) = return_path.split_once('@').unwrap();
        let (base, tag) = local.split_once('+').unwrap();
        assert_eq!((base, domain), ("bounces", "relais.example.org"));
        assert_eq!(tag.len(), 26);
        assert!(tag.bytes().all(|b| ALPHABET.contains(&b)), "{tag}");
        assert!(local.len() <= 64);
    }

    #[test]
    fn two_numbers_give_two_tags() {
        let address = address();

        let first = address.return_path(1, &key(7));
        let second = address.return_path(2, &key(7));

        assert_ne!(first, second);
    }

    #[test]
    fn a_return_path_case_folded_by_a_mail_server_still_reads() {
        let address = address();
        let return_path = address.return_path(987_654_321, &key(7));

        let upper = return_path.to_uppercase();
        let bracketed = format!("<{return_path}>");

        assert_eq!(address.read(&upper, &key(7)), Ok(987_654_321));
        assert_eq!(address.read(&bracketed, &key(7)), Ok(987_654_321));
    }

    #[test]
    fn a_tag_with_any_character_changed_is_forged_or_malformed() {
        let address = address();
        let return_path = address.return_path(5, &key(7));
        let start = return_path.find('+').unwrap() + 1;

        for position in start..start + TAG_LEN {
            for replacement in ['a', 'z', '7'] {
                let mut changed = return_path.clone().into_bytes();
                if changed[position] == replacement as u8 {
                    continue;
                }
                changed[position] = replacement as u8;
                let changed = String::from_utf8(changed).unwrap();

                let read = address.read(&changed, &key(7));

                assert!(
                    matches!(read, Err(TagError::Forged | TagError::Malformed)),
                    "{changed}: {read:?}"
                );
            }
        }
    }

    #[test]
    fn a_number_signed_with_another_relais_key_is_forged() {
        let address = address();
        let theirs = address.return_path(5, &key(8));

        assert_eq!(address.read(&theirs, &key(7)), Err(TagError::Forged));
    }

    #[test]
    fn another_domain_or_local_part_is_not_ours() {
        let address = address();
        let tag = address.return_path(5, &key(7));
        let tag = &tag[tag.find('+').unwrap()..tag.find('@').unwrap()];

        for recipient in [
            format!("bounces{tag}@other.example.org"),
            format!("bounces{tag}@example.org"),
            format!("postmaster{tag}@relais.example.org"),
            format!("bounce{tag}@relais.example.org"),
            "no at sign".to_owned(),
        ] {
            assert_eq!(
                address.read(&recipient, &key(7)),
                Err(TagError::NotOurs),
                "{recipient}"
            );
        }
    }

    #[test]
    fn the_bounce_address_without_a_valid_tag_is_malformed() {
        let address = address();
        let good = address.return_path(5, &key(7));
        let tag = &good[good.find('+').unwrap() + 1..good.find('@').unwrap()];

        for recipient in [
            "bounces@relais.example.org".to_owned(),
            "bounces+@relais.example.org".to_owned(),
            format!("bounces+{}@relais.example.org", &tag[1..]),
            format!("bounces+{tag}a@relais.example.org"),
            format!("bounces+{}1@relais.example.org", &tag[1..]),
            format!("bounces+{}é@relais.example.org", &tag[2..]),
        ] {
            assert_eq!(
                address.read(&recipient, &key(7)),
                Err(TagError::Malformed),
                "{recipient}"
            );
        }
    }

    #[test]
    fn a_tag_spelt_with_its_unused_last_bits_set_is_malformed() {
        let address = address();
        let good = address.return_path(5, &key(7));
        let at = good.find('@').unwrap();
        let last = good.as_bytes()[at - 1];
        let position = ALPHABET.iter().position(|&c| c == last).unwrap();
        let mut other = good.clone().into_bytes();
        other[at - 1] = ALPHABET[position ^ 1];

        let read = address.read(&String::from_utf8(other).unwrap(), &key(7));

        assert_eq!(read, Err(TagError::Malformed));
    }

    #[test]
    fn a_bounce_address_that_leaves_no_room_for_the_tag_is_refused() {
        let longest = format!("{}@relais.example.org", "b".repeat(37));
        let too_long = format!("{}@relais.example.org", "b".repeat(38));

        let accepted = BounceAddress::parse(&longest).unwrap();
        let error = BounceAddress::parse(&too_long).unwrap_err();

        let return_path = accepted.return_path(u64::MAX, &key(7));
        assert_eq!(return_path.split_once('@').unwrap().0.len(), 64);
        assert_eq!(
            error,
            "smtp.bounce_address's local part is 38 characters: relais adds `+` and a \
             26-character tag, and a local part may be 64 octets (RFC 5321), so it may be 37 \
             at most"
        );
    }

    #[test]
    fn a_bounce_address_with_a_plus_or_not_an_address_is_refused() {
        for address in [
            "bounces+relais@example.org",
            "bounces",
            "@example.org",
            "bounces@",
            "bou nces@example.org",
            "bounces@exa mple.org",
            ".bounces@example.org",
            "bounces@-example.org",
            "\"bounces\"@example.org",
        ] {
            assert!(BounceAddress::parse(address).is_err(), "{address}");
        }
        assert_eq!(
            BounceAddress::parse("bounces+relais@example.org"),
            Err(
                "smtp.bounce_address must have no `+` in its local part: relais adds `+` and \
                 a tag to it"
                    .to_owned()
            )
        );
    }

    #[test]
    fn the_tag_is_rfc_4648_base32_in_lowercase() {
        // RFC 4648, 10: BASE32("foobar") = "MZXW6YTBOI======".
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(b"foobar");

        let text = encode(&bytes);

        assert!(text.starts_with("mzxw6ytboi"), "{text}");
        assert_eq!(decode(&text), Some(bytes));
        assert_eq!(decode(&text.to_uppercase()), Some(bytes));
    }
}
