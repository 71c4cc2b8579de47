//! Bounce messages sent to the return path: see `checks::dsn`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|raw: &[u8]| checks::dsn(raw));
