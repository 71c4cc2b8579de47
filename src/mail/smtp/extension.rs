//! The EHLO exchange (RFC 5321 §4.1.1.1): the name relais gives, a fully
//! qualified domain name or the address literal of its own end, and the
//! extensions the server announces that relais uses (PIPELINING, CHUNKING,
//! STARTTLS, 8BITMIME, SMTPUTF8, AUTH PLAIN and LOGIN).
//!
//! It never gives a name that is not one (a host name with a line break
//! would write a second command) and never assumes an extension the server
//! did not announce.

use std::fmt;
use std::net::SocketAddr;

/// The name relais gives in EHLO (RFC 5321 §4.1.4: a fully qualified
/// domain name, or an address literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// This name (`smtp.helo_name`, or the machine's fully qualified name).
    Name(String),
    /// The address literal of the connection's own end, e.g.
    /// `[127.0.0.1]` or `[IPv6:::1]`, for a machine without a qualified name.
    LocalAddress,
}

impl Hello {
    /// The machine's fully qualified name when it has one (its host name if
    /// qualified, else the canonical name the resolver gives for it, as
    /// `hostname --fqdn` does), else [`Hello::LocalAddress`].
    pub fn for_this_machine() -> Self {
        machine_fqdn().map_or(Self::LocalAddress, Self::Name)
    }

    pub(super) fn for_connection(&self, local: SocketAddr) -> String {
        match self {
            Self::Name(name) => name.clone(),
            Self::LocalAddress => address_literal(local),
        }
    }
}

impl fmt::Display for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::LocalAddress => f.write_str("the address literal of each connection's own end"),
        }
    }
}

/// The machine's fully qualified domain name, if it has one.
fn machine_fqdn() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return None;
    }
    let end = buffer.iter().position(|&b| b == 0)?;
    let host = std::str::from_utf8(&buffer[..end]).ok()?.to_owned();
    let qualified =
        |name: &str| name.contains('.') && !name.ends_with(".localdomain") && is_domain(name);
    if qualified(&host) {
        return Some(host);
    }
    canonical_name(&host).filter(|name| qualified(name))
}

/// The canonical name the resolver gives for `host` (AI_CANONNAME).
fn canonical_name(host: &str) -> Option<String> {
    let host = std::ffi::CString::new(host).ok()?;
    // SAFETY: a zeroed addrinfo is a valid "no hints" value; the flags ask
    // for the canonical name only.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    let mut found: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: every pointer is valid; `found` is freed below when set.
    let status = unsafe { libc::getaddrinfo(host.as_ptr(), std::ptr::null(), &hints, &mut found) };
    if status != 0 || found.is_null() {
        return None;
    }
    // SAFETY: `found` is the list getaddrinfo made; its first entry holds
    // the canonical name (or null), read before the list is freed.
    unsafe {
        let canonical = (*found).ai_canonname;
        let name = (!canonical.is_null()).then(|| {
            std::ffi::CStr::from_ptr(canonical)
                .to_string_lossy()
                .into_owned()
        });
        libc::freeaddrinfo(found);
        name
    }
}

/// Whether `name` is a domain name: labels of letters, digits and hyphens,
/// separated by dots.
pub fn is_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `[192.0.2.1]`, or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
pub fn address_literal(address: SocketAddr) -> String {
    match address.ip().to_canonical() {
        std::net::IpAddr::V4(ip) => format!("[{ip}]"),
        std::net::IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
    }
}

/// The extensions the server announced in its EHLO reply that relais uses.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Extensions {
    pub(super) pipelining: bool,
    pub(super) chunking: bool,
    pub(super) starttls: bool,
    pub(super) eight_bit_mime: bool,
    pub(super) smtp_utf8: bool,
    pub(super) auth_plain: bool,
    pub(super) auth_login: bool,
}

impl Extensions {
    pub(super) fn from_ehlo(lines: &[String]) -> Self {
        let mut found = Self::default();
        // The first line is the server's name; the others are keywords.
        for line in lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => found.pipelining = true,
                "CHUNKING" => found.chunking = true,
                "STARTTLS" => found.starttls = true,
                "8BITMIME" => found.eight_bit_mime = true,
                "SMTPUTF8" => found.smtp_utf8 = true,
                "AUTH" => {
                    for mechanism in words {
                        match mechanism.to_ascii_uppercase().as_str() {
                            "PLAIN" => found.auth_plain = true,
                            "LOGIN" => found.auth_login = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_literal_is_written_as_rfc_5321_says() {
        let v4: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:40000".parse().unwrap();
        assert_eq!(address_literal(v4), "[127.0.0.1]");
        assert_eq!(address_literal(v6), "[IPv6:2001:db8::1]");
        assert_eq!(address_literal(mapped), "[192.0.2.7]");
        assert_eq!(Hello::LocalAddress.for_connection(v4), "[127.0.0.1]");
        assert_eq!(
            Hello::Name("relais.example.org".into()).for_connection(v4),
            "relais.example.org"
        );
    }

    #[test]
    fn the_ehlo_reply_gives_the_extensions_relais_uses() {
        let lines: Vec<String> = [
            "mx.example.org",
            "PIPELINING",
            "CHUNKING",
            "8BITMIME",
            "AUTH LOGIN PLAIN",
            "STARTTLS",
            "SIZE 1000",
        ]
        .map(String::from)
        .to_vec();
        let found = Extensions::from_ehlo(&lines);
        assert!(found.pipelining && found.chunking && found.eight_bit_mime && found.starttls);
        assert!(found.auth_plain && found.auth_login);
        assert!(!found.smtp_utf8);
    }
}
