//! The absence page (`/absence/{token}`): a référent, from the personal
//! link of its emails, sees its absences in force or to come (the
//! registry's, which only the operators change, and those it declared),
//! declares one (first and last day, and which of its deputies stands in)
//! and cancels one it declared.
//!
//! A GET changes nothing. A POST declares or cancels: in the store (who,
//! when, what), in the log (`Events`), and in the relay's declared absences
//! ([`crate::absences::DeclaredAbsences::changed`]), so that the next alert counts it. An
//! absence follows the registry's rules (core's [`Absence`]: dates in
//! order, at most 366 days), must not have ended, and can only name one of
//! the référent's own deputies; the page says in plain French on which
//! days only the network's fallback référents, or nobody, would stand in.
//! An expired or forged link, or an acknowledgement link, gets a 4xx page
//! and changes nothing. The page shows the référent, its deputies and
//! dates: never an alert, never a patient.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use time::{Date, OffsetDateTime};

use super::Pages;
use super::page::{AbsencePage, AbsenceView, AbsencesView, FormView, Notice};
use super::token::{AbsenceLink, TokenError};
use crate::availability::{Absence, AbsenceError, LONGEST_DAYS, paris_date};
use crate::registry::{ExtraAbsences, Referent, Registry, StandIn};
use crate::store::{AbsenceDeclaration, DeclaredAbsence};

/// GET: the référent's absences, and the form. Changes nothing.
pub(super) async fn show(State(pages): State<Pages>, Path(token): Path<String>) -> Response {
    match pages.links.read_absence(&token) {
        Ok(link) => pages.absences(&link, None, FormView::default()).await,
        Err(error) => pages.absence_refused(error),
    }
}

/// POST: one of the page's forms, `action=declare` (`from`, `to`,
/// `deputy`) or `action=cancel` (`id`).
pub(super) async fn change(
    State(pages): State<Pages>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let link = match pages.links.read_absence(&token) {
        Ok(link) => link,
        Err(error) => return pages.absence_refused(error),
    };
    let field = |name: &str| {
        url::form_urlencoded::parse(&body)
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_default()
    };
    let form = FormView {
        from: field("from"),
        to: field("to"),
        deputy: field("deputy"),
    };
    match field("action").as_str() {
        "declare" => pages.declare(&link, form).await,
        "cancel" => pages.cancel(&link, &field("id")).await,
        _ => {
            let notice = refused("Ce formulaire n'est pas celui de la page : rechargez-la.");
            pages.absences(&link, Some(notice), form).await
        }
    }
}

impl Pages {
    /// Declares the absence of `form` for the link's référent.
    async fn declare(&self, link: &AbsenceLink, form: FormView) -> Response {
        let registry = self.registry.load();
        let Some(referent) = registry.referent(&link.referent_id) else {
            return self.templates.render_absence(&AbsencePage::Gone);
        };
        let now = OffsetDateTime::now_utc();
        let today = paris_date(now);
        let absence = match Absence::parse(&form.from, &form.to) {
            Ok(absence) if absence.to < today => Err(
                "Cette absence est déjà terminée : indiquez un dernier jour d'aujourd'hui ou à venir."
                    .to_owned(),
            ),
            Ok(absence) => Ok(absence),
            Err(AbsenceError::NotADate(_)) => {
                Err("Indiquez le premier et le dernier jour de l'absence.".to_owned())
            }
            Err(AbsenceError::Reversed) => {
                Err("Le dernier jour est avant le premier : vérifiez les dates.".to_owned())
            }
            Err(AbsenceError::TooLong) => Err(format!(
                "Une absence dure au plus {LONGEST_DAYS} jours : au-delà, l'association doit \
                 désigner une autre personne."
            )),
        };
        let deputy = match form.deputy.as_str() {
            "" => Ok(None),
            chosen => registry
                .deputies_of(referent)
                .into_iter()
                .find(|deputy| deputy.id().as_str() == chosen)
                .map(Some)
                .ok_or_else(|| {
                    "La personne choisie n'est pas l'un·e de vos suppléant·es : choisissez dans \
                     la liste."
                        .to_owned()
                }),
        };
        let (absence, deputy) = match (absence, deputy) {
            (Ok(absence), Ok(deputy)) => (absence, deputy),
            (Err(problem), _) | (_, Err(problem)) => {
                return self.absences(link, Some(refused(&problem)), form).await;
            }
        };
        let deputy_id = deputy.map(|d| d.id().as_str());
        let declared = match self.store.declared_absences(today, now).await {
            Ok(declared) => declared,
            Err(error) => return self.store_failed(referent, &error),
        };
        let again = declared.iter().any(|a| {
            a.referent_id == referent.id().as_str()
                && (a.from, a.to) == (absence.from, absence.to)
                && a.deputy_id.as_deref() == deputy_id
        });
        if !again {
            let declaration = AbsenceDeclaration {
                referent_id: referent.id().as_str(),
                from: absence.from,
                to: absence.to,
                deputy_id,
                declared_by: referent.id().as_str(),
                declared_at: now,
            };
            if let Err(error) = self.store.declare_absence(declaration).await {
                return self.store_failed(referent, &error);
            }
            self.events
                .absence_declared(referent, absence.from, absence.to, deputy_id);
            self.absences.changed();
        }
        let notice = Notice {
            ok: true,
            text: format!(
                "Absence enregistrée {} : elle compte dès maintenant pour les alertes.",
                dates(absence.from, absence.to)
            ),
        };
        self.absences(link, Some(notice), FormView::default()).await
    }

    /// Cancels the absence numbered `id`, if the link's référent declared
    /// it and it is in force or to come.
    async fn cancel(&self, link: &AbsenceLink, id: &str) -> Response {
        let registry = self.registry.load();
        let Some(referent) = registry.referent(&link.referent_id) else {
            return self.templates.render_absence(&AbsencePage::Gone);
        };
        let now = OffsetDateTime::now_utc();
        let declared = match self.store.declared_absences(paris_date(now), now).await {
            Ok(declared) => declared,
            Err(error) => return self.store_failed(referent, &error),
        };
        let found = id.parse::<i64>().ok().and_then(|id| {
            declared
                .iter()
                .find(|a| a.id == id && a.referent_id == referent.id().as_str())
        });
        let Some(absence) = found else {
            let notice = refused("Cette absence n'est plus en cours ni à venir : rien à annuler.");
            return self.absences(link, Some(notice), FormView::default()).await;
        };
        match self
            .store
            .cancel_absence(referent.id().as_str(), absence.id, now)
            .await
        {
            Ok(first) => {
                if first {
                    self.events
                        .absence_cancelled(referent, absence.from, absence.to);
                    self.absences.changed();
                }
                let notice = Notice {
                    ok: true,
                    text: format!("Absence {} annulée.", dates(absence.from, absence.to)),
                };
                self.absences(link, Some(notice), FormView::default()).await
            }
            Err(error) => self.store_failed(referent, &error),
        }
    }

    /// The page of the link's référent, with `notice` and the form as
    /// `form` holds it; a refusal (`notice` not `ok`) answers 422.
    async fn absences(
        &self,
        link: &AbsenceLink,
        notice: Option<Notice>,
        form: FormView,
    ) -> Response {
        let registry = self.registry.load();
        let Some(referent) = registry.referent(&link.referent_id) else {
            return self.templates.render_absence(&AbsencePage::Gone);
        };
        let now = OffsetDateTime::now_utc();
        let today = paris_date(now);
        let declared = match self.store.declared_absences(today, now).await {
            Ok(declared) => declared,
            Err(error) => return self.store_failed(referent, &error),
        };
        let status = match &notice {
            Some(Notice { ok: false, .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::OK,
        };
        let view = AbsencesView {
            referent: name(referent).to_owned(),
            network: referent.network().to_owned(),
            notice,
            absences: listed(&registry, referent, declared, today),
            deputies: registry
                .deputies_of(referent)
                .into_iter()
                .map(|deputy| (deputy.id().to_string(), name(deputy).to_owned()))
                .collect(),
            today: today.to_string(),
            form,
            valid_until: OffsetDateTime::from_unix_timestamp(link.expires_at)
                .map(|at| french(paris_date(at)))
                .unwrap_or_default(),
        };
        self.templates.render_absence(&AbsencePage::Absences {
            status,
            view: &view,
        })
    }

    /// The page an expired or forged link (or an acknowledgement link)
    /// opens.
    fn absence_refused(&self, error: TokenError) -> Response {
        self.templates.render_absence(&match error {
            TokenError::Expired => AbsencePage::Expired,
            TokenError::Forged => AbsencePage::Unknown,
        })
    }

    fn store_failed(&self, referent: &Referent, error: &crate::store::StoreError) -> Response {
        tracing::error!(referent = %referent.id(), %error,
            "cannot read or record a référent's absences");
        self.templates.render_absence(&AbsencePage::RetryLater)
    }
}

/// The référent's absences in force or to come, first day first: the
/// registry's and those it declared, each with the days on which only the
/// fallback référents, or nobody, would stand in (with every absence
/// declared, the référent's and others').
fn listed(
    registry: &Registry,
    referent: &Referent,
    declared: Vec<DeclaredAbsence>,
    today: Date,
) -> Vec<AbsenceView> {
    let own = declared
        .iter()
        .filter(|a| a.referent_id == referent.id().as_str());
    let mut list: Vec<(Absence, Option<&DeclaredAbsence>)> = registry
        .absences_of(referent)
        .iter()
        .filter(|absence| absence.to >= today)
        .map(|absence| (*absence, None))
        .chain(own.map(|a| {
            (
                Absence {
                    from: a.from,
                    to: a.to,
                },
                Some(a),
            )
        }))
        .collect();
    list.sort_by_key(|(absence, own)| (absence.from, absence.to, own.map(|a| a.id)));
    let has_deputies = !registry.deputies_of(referent).is_empty();
    let extra = crate::absences::extra(declared.clone());
    list.into_iter()
        .map(|(absence, own)| {
            let (fallback_days, nobody_days) =
                uncovered(registry, referent, absence, today, &extra);
            AbsenceView {
                id: own.map(|a| a.id),
                dates: capitalised(&dates(absence.from, absence.to)),
                deputy: own.and_then(|a| match &a.deputy_id {
                    Some(id) => Some(registry.referent(id).map_or(id.as_str(), name).to_owned()),
                    None => has_deputies.then(|| "vos suppléant·es présent·es".to_owned()),
                }),
                fallback_days,
                nobody_days,
            }
        })
        .collect()
}

/// The days of `absence` from `today` on which only the fallback
/// référents, and those on which nobody, would stand in for `referent`
/// (`Le 25/12/2026, du 27/12/2026 au 29/12/2026`), if any.
fn uncovered(
    registry: &Registry,
    referent: &Referent,
    absence: Absence,
    today: Date,
    extra: &ExtraAbsences,
) -> (Option<String>, Option<String>) {
    let (mut fallback, mut nobody) = (Vec::new(), Vec::new());
    for date in absence.dates().filter(|date| *date >= today) {
        match registry.stand_in(referent, date, extra) {
            StandIn::Fallback(_) => fallback.push(date),
            StandIn::Nobody => nobody.push(date),
            StandIn::Present | StandIn::Deputies(_) => {}
        }
    }
    (days(&fallback), days(&nobody))
}

/// Consecutive dates as runs, in French: `Le 25/12/2026, du 27/12/2026 au
/// 29/12/2026`; `None` for none.
fn days(list: &[Date]) -> Option<String> {
    let mut runs: Vec<(Date, Date)> = Vec::new();
    for &date in list {
        match runs.last_mut() {
            Some((_, last)) if last.next_day() == Some(date) => *last = date,
            _ => runs.push((date, date)),
        }
    }
    let words: Vec<String> = runs.into_iter().map(|(from, to)| dates(from, to)).collect();
    (!words.is_empty()).then(|| capitalised(&words.join(", ")))
}

/// `du 24/12/2026 au 02/01/2027`, or `le 24/12/2026` for one day.
fn dates(from: Date, to: Date) -> String {
    if from == to {
        format!("le {}", french(from))
    } else {
        format!("du {} au {}", french(from), french(to))
    }
}

/// `24/12/2026`.
fn french(date: Date) -> String {
    format!(
        "{:02}/{:02}/{}",
        date.day(),
        u8::from(date.month()),
        date.year()
    )
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A référent as the emails name it: its name, else its office, else its
/// id.
fn name(referent: &Referent) -> &str {
    referent
        .name()
        .or(referent.organisation())
        .unwrap_or(referent.id().as_str())
}

fn refused(text: &str) -> Notice {
    Notice {
        ok: false,
        text: text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn days_are_said_as_runs_in_french() {
        let list = [
            date!(2026 - 12 - 25),
            date!(2026 - 12 - 27),
            date!(2026 - 12 - 28),
            date!(2026 - 12 - 29),
            date!(2027 - 01 - 01),
        ];

        assert_eq!(
            days(&list).unwrap(),
            "Le 25/12/2026, du 27/12/2026 au 29/12/2026, le 01/01/2027"
        );
        assert_eq!(days(&[]), None);
        assert_eq!(
            dates(date!(2026 - 12 - 24), date!(2027 - 01 - 02)),
            "du 24/12/2026 au 02/01/2027"
        );
    }
}
