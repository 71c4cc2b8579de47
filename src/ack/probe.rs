//! The page of a probe's link (`/probe/{token}`): the office confirms that
//! the test email of `relais registry probe` reached it. A GET shows the
//! address and a button, and changes nothing (a mail scanner that opens
//! links confirms nothing); a POST records the confirmation, once. The
//! token is random and names a probe only: the page shows an address,
//! never an alert.

use axum::extract::{Path, State};
use axum::response::Response;

use super::Pages;
use super::page::ProbePage;

/// The longest token a probe has (32 hexadecimal digits): anything else
/// is unknown without asking the store.
const TOKEN_LENGTH: usize = 32;

/// GET: the address, and the button.
pub(super) async fn show(State(pages): State<Pages>, Path(token): Path<String>) -> Response {
    if !well_formed(&token) {
        return pages.templates.render_probe(&ProbePage::Unknown);
    }
    match pages.store.probe(&token).await {
        Ok(Some(probe)) if probe.confirmed_at.is_some() => {
            pages.templates.render_probe(&ProbePage::Confirmed {
                email: &probe.email,
            })
        }
        Ok(Some(probe)) => pages.templates.render_probe(&ProbePage::Ask {
            email: &probe.email,
        }),
        Ok(None) => pages.templates.render_probe(&ProbePage::Unknown),
        Err(_) => pages.templates.render_probe(&ProbePage::RetryLater),
    }
}

/// POST: the button, which records the confirmation.
pub(super) async fn confirm(State(pages): State<Pages>, Path(token): Path<String>) -> Response {
    if !well_formed(&token) {
        return pages.templates.render_probe(&ProbePage::Unknown);
    }
    match pages.store.confirm_probe(&token).await {
        Ok(Some(probe)) => {
            pages.events.probe_confirmed(&probe.referent_id);
            pages.templates.render_probe(&ProbePage::Confirmed {
                email: &probe.email,
            })
        }
        Ok(None) => pages.templates.render_probe(&ProbePage::Unknown),
        Err(_) => pages.templates.render_probe(&ProbePage::RetryLater),
    }
}

fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LENGTH && token.bytes().all(|byte| byte.is_ascii_hexdigit())
}
