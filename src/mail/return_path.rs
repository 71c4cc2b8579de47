//! Each email's own return path (`smtp.bounce_address`): the envelope
//! sender `<local>+<tag>@<domain>`, whose tag is a fresh number (the
//! second it was made, then 32 random bits) signed with the store's
//! `bounce` key (shared by every relais on the
//! store, so that any of them reads a bounce of another's email). The
//! delivery's record keeps the number; a bounce sent back to that address
//! names the email it returns, and nothing readable (`crate::bounce::tag`).

use lettre::Address;
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use time::OffsetDateTime;

use crate::bounce::{BounceAddress, TagError};

/// Makes and reads the return paths of relais's emails.
pub struct ReturnPaths {
    address: BounceAddress,
    key: hmac::Key,
    random: SystemRandom,
}

impl ReturnPaths {
    /// Return paths built on `address`, signed with `key` (the store's
    /// `bounce` key).
    pub fn new(address: BounceAddress, key: &[u8]) -> Self {
        Self {
            address,
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            random: SystemRandom::new(),
        }
    }

    /// A fresh number and the return path it tags; `None` when the random
    /// source fails or the address is not one (neither happens with a
    /// checked `smtp.bounce_address`): the email then leaves with the
    /// usual envelope sender.
    pub fn fresh(&self) -> Option<(u64, Address)> {
        let mut bytes = [0_u8; 4];
        self.random.fill(&mut bytes).ok()?;
        let now = u32::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(u32::MAX);
        let number = (u64::from(now) << 32) | u64::from(u32::from_be_bytes(bytes));
        let address = self.address.return_path(number, &self.key).parse().ok()?;
        Some((number, address))
    }

    /// The number a bounce's envelope recipient names.
    ///
    /// # Errors
    /// [`TagError`]: another address, no valid tag, or a tag this relais's
    /// key did not sign.
    pub fn read(&self, recipient: &str) -> Result<u64, TagError> {
        self.address.read(recipient, &self.key)
    }
}

/// When the number of a return path was made (by [`ReturnPaths::fresh`]):
/// a bounce for an email not recorded yet is told apart from one for an
/// email forgotten long ago.
pub fn made_at(number: u64) -> OffsetDateTime {
    let seconds = i64::try_from(number >> 32).unwrap_or_default();
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
