//! The référents' pages as their browser receives them: the HTML, rendered
//! from `templates/ack.html` and `templates/absence.html` (compiled in)
//! with every value auto-escaped, and the headers a public page needs (no
//! caching of the token, no referrer, a strict CSP, no framing, no
//! indexing).
//!
//! This module only renders: it never reads a token, the registry or the
//! store, and it is given ids, labels, places, times and the names of
//! référents, never patient data. No value reaches the HTML unescaped: the
//! template is `.html`, so minijinja escapes whatever it writes, as it does
//! for the emails. The follow-ups a page offers are the closed list of
//! [`FollowUp`], each a button of a form: nothing a référent types.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value};
use serde::Serialize;

use crate::follow_up::FollowUp;

/// One of the pages, with what it shows; the template's `page`.
#[derive(Debug, Serialize)]
#[serde(tag = "page", rename_all = "snake_case")]
pub(super) enum Page<'a> {
    /// A valid link opened: the alert and where it stands, then the
    /// button, or the follow-ups once this référent acknowledged it.
    Confirm {
        alert_id: &'a str,
        /// The kind, as the registry labels it.
        label: &'a str,
        /// The territory, in words.
        place: &'a str,
        /// When the alert was emitted, Paris time (`22/11/2026 à 08h15`).
        emitted: &'a str,
        /// Who of the référent's network acknowledged it first, when it was
        /// another référent.
        colleague: Option<Colleague<'a>>,
        /// When this référent acknowledged it, Paris time (`22/11/2026 à
        /// 08:15`), if they did.
        acknowledged: Option<&'a str>,
        /// The network's last follow-up, in words.
        follow_up: Option<&'a str>,
        /// The référent's absence page.
        absence: Option<&'a str>,
    },
    /// The button pressed: recorded now (`first`), or recorded already;
    /// the follow-ups offered.
    Thanks {
        alert_id: &'a str,
        first: bool,
        /// The network's last follow-up, in words.
        follow_up: Option<&'a str>,
        /// The référent's absence page.
        absence: Option<&'a str>,
    },
    /// A follow-up chosen and recorded (the label of the choice); the
    /// others still offered, to change it.
    FollowedUp {
        alert_id: &'a str,
        follow_up: &'a str,
        /// The alert was handed back: not the référent's service's.
        handed_back: bool,
    },
    /// A follow-up that is not one of the buttons' (an altered form).
    UnknownChoice,
    /// The store could not record it: nothing is lost, press again.
    RetryLater,
    /// A link past its `ack.link_ttl`.
    Expired,
    /// A link relais did not sign, or that was altered.
    Unknown,
}

/// A référent of the same network who acknowledged the alert first.
#[derive(Debug, Serialize)]
pub(super) struct Colleague<'a> {
    /// Their organisation and name as the registry has them
    /// (`CCAS de Paris 13e — Camille Martin`).
    pub by: &'a str,
    /// When, Paris time (`22/11/2026 à 08:15`).
    pub at: &'a str,
}

impl Page<'_> {
    fn status(&self) -> StatusCode {
        match self {
            Self::Confirm { .. } | Self::Thanks { .. } | Self::FollowedUp { .. } => StatusCode::OK,
            Self::UnknownChoice => StatusCode::BAD_REQUEST,
            Self::RetryLater => StatusCode::SERVICE_UNAVAILABLE,
            Self::Expired => StatusCode::GONE,
            Self::Unknown => StatusCode::NOT_FOUND,
        }
    }
}

/// One button of the follow-ups' form: the code it posts, the words it
/// shows.
#[derive(Serialize)]
struct Choice {
    code: &'static str,
    label: &'static str,
}

/// One of the absence page's answers, with what it shows; the template's
/// `page`.
#[derive(Debug, Serialize)]
#[serde(tag = "page", rename_all = "snake_case")]
pub(super) enum AbsencePage<'a> {
    /// The référent's absences and the form; `status` says whether what
    /// was sent was refused.
    Absences {
        #[serde(skip)]
        status: StatusCode,
        #[serde(flatten)]
        view: &'a AbsencesView,
    },
    /// The store could not be read or written: nothing changed.
    RetryLater,
    /// A link past its validity.
    Expired,
    /// A link relais did not seal for this page, or that was altered.
    Unknown,
    /// A valid link of a référent the registry no longer names.
    Gone,
}

impl AbsencePage<'_> {
    fn status(&self) -> StatusCode {
        match self {
            Self::Absences { status, .. } => *status,
            Self::RetryLater => StatusCode::SERVICE_UNAVAILABLE,
            Self::Expired | Self::Gone => StatusCode::GONE,
            Self::Unknown => StatusCode::NOT_FOUND,
        }
    }
}

/// One of the probe page's answers; the template's `page`.
#[derive(Debug, Serialize)]
#[serde(tag = "page", rename_all = "snake_case")]
pub(super) enum ProbePage<'a> {
    /// The address, and the button.
    Ask { email: &'a str },
    /// Receipt confirmed (now or before).
    Confirmed { email: &'a str },
    /// The store could not be read or written.
    RetryLater,
    /// No probe has this token.
    Unknown,
}

impl ProbePage<'_> {
    fn status(&self) -> StatusCode {
        match self {
            Self::Ask { .. } | Self::Confirmed { .. } => StatusCode::OK,
            Self::RetryLater => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unknown => StatusCode::NOT_FOUND,
        }
    }
}

/// What the absence page shows of a référent: its name, its absences (the
/// registry's and its own), its deputies, and what its last change did.
/// Dates are written as people read them (`24/12/2026`); no patient data
/// ever reaches it.
#[derive(Debug, Default, Serialize)]
pub(super) struct AbsencesView {
    /// The référent as the emails name it: its name, else its office,
    /// else its id.
    pub referent: String,
    pub network: String,
    /// What the last change did, or why it was refused.
    pub notice: Option<Notice>,
    /// Its absences in force or to come, first day first.
    pub absences: Vec<AbsenceView>,
    /// Its deputies in the registry: (id, name).
    pub deputies: Vec<(String, String)>,
    /// Today in Paris, `YYYY-MM-DD` (the date fields' lowest value).
    pub today: String,
    /// What the form held when it was refused, to fill it again.
    pub form: FormView,
    /// Until when the link works, `24/12/2026`.
    pub valid_until: String,
}

/// What the last change did (`ok`) or why it was refused (`error`).
#[derive(Debug, Serialize)]
pub(super) struct Notice {
    pub ok: bool,
    pub text: String,
}

/// One absence of the list.
#[derive(Debug, Serialize)]
pub(super) struct AbsenceView {
    /// The store's number of an absence the référent declared (what its
    /// cancel button sends); `None` for one of the registry.
    pub id: Option<i64>,
    /// `du 24/12/2026 au 02/01/2027`, or `le 24/12/2026`.
    pub dates: String,
    /// The deputy it chose, by name.
    pub deputy: Option<String>,
    /// The days on which only the network's fallback référents stand in.
    pub fallback_days: Option<String>,
    /// The days on which nobody can stand in.
    pub nobody_days: Option<String>,
}

/// The form's values, as sent.
#[derive(Debug, Default, Serialize)]
pub(super) struct FormView {
    pub from: String,
    pub to: String,
    pub deputy: String,
}

/// The pages' templates, compiled once; shared by every request.
pub(super) struct Templates {
    templates: Environment<'static>,
}

impl Templates {
    /// # Errors
    /// A template that does not compile (they are part of the binary, so
    /// this is caught by the tests).
    pub(super) fn new() -> Result<Self, minijinja::Error> {
        let mut templates = Environment::new();
        templates.set_undefined_behavior(UndefinedBehavior::Strict);
        templates.set_formatter(escape);
        let choices: Vec<Choice> = FollowUp::ALL
            .into_iter()
            .map(|choice| Choice {
                code: choice.code(),
                label: choice.label(),
            })
            .collect();
        templates.add_global("choices", Value::from(minijinja::value::Serde(&choices)));
        // `.html`: every value is HTML-escaped (see `escape`).
        templates.add_template("ack.html", include_str!("../../templates/ack.html"))?;
        templates.add_template("absence.html", include_str!("../../templates/absence.html"))?;
        templates.add_template("probe.html", include_str!("../../templates/probe.html"))?;
        Ok(Self { templates })
    }

    /// `page`, whole, with its status and the headers a public page needs.
    pub(super) fn render(&self, page: &Page<'_>) -> Response {
        self.render_as("ack.html", page.status(), page)
    }

    /// The absence page `page`, as [`Templates::render`].
    pub(super) fn render_absence(&self, page: &AbsencePage<'_>) -> Response {
        self.render_as("absence.html", page.status(), page)
    }

    /// The probe page `page`, as [`Templates::render`].
    pub(super) fn render_probe(&self, page: &ProbePage<'_>) -> Response {
        self.render_as("probe.html", page.status(), page)
    }

    fn render_as(&self, name: &str, status: StatusCode, page: &impl Serialize) -> Response {
        let view = Value::from(minijinja::value::Serde(page));
        match self
            .templates
            .get_template(name)
            .and_then(|template| template.render(&view))
        {
            Ok(html) => (status, headers(), html).into_response(),
            Err(error) => {
                tracing::error!(%error, template = name, "cannot render a référent's page");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// What a public page is served with: no caching (the link is personal),
/// no referrer, nothing but its own inline style and form, no framing, no
/// indexing.
fn headers() -> [(HeaderName, HeaderValue); 7] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("x-robots-tag"),
            HeaderValue::from_static("noindex"),
        ),
    ]
}

/// minijinja's auto-escaping, with the pages' own entities: `'` is
/// written `&#39;` and `/` is left as it is (minijinja writes `&#x27;` and
/// `&#x2f;`), so that a page is the same bytes as it has always been; a
/// browser reads both the same. `&`, `<`, `>` and `"` are escaped as
/// minijinja does; a value the template marks safe, or a template that is
/// not HTML, is left to minijinja.
fn escape(out: &mut Output, state: &mut State, value: &Value) -> Result<(), minijinja::Error> {
    let Some(text) = value
        .as_str()
        .filter(|_| *state.auto_escape() == AutoEscape::Html && !value.is_safe())
    else {
        return minijinja::escape_formatter(out, state, value);
    };
    let mut rest = text;
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
        out.write_str(&rest[..at])?;
        out.write_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        })?;
        rest = &rest[at + 1..];
    }
    out.write_str(rest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character the escaping changes, and a `/` it leaves.
    const REFERENCE: &str = "SOS94-1/2'<&>\"";
    const LABEL: &str = "Signalement d'isolement <b> & \"x\" / y";
    const PLACE: &str = "L'Haÿ-les-Roses (94038)";

    const HEAD: &str = "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
        <title>relais — prise en compte d'une alerte</title><style>body{font-family:\
        system-ui,Arial,sans-serif;margin:0;padding:16px;color:#1a1a1a;background:#fafafa}\
        main{max-width:560px;margin:auto;background:#fff;padding:20px;border-radius:8px}\
        h1{font-size:1.4em}dt{font-weight:bold;margin-top:8px}dd{margin:0}button{width:100%;\
        font-size:1.1em;padding:14px;margin-top:16px;border:0;border-radius:6px;\
        background:#0b5394;color:#fff}h2{font-size:1.15em;margin-top:24px}.note{padding:10px;\
        border-left:4px solid #0b5394;background:#eef3f9}.suite button{margin-top:10px;\
        background:#fff;color:#0b5394;border:2px solid #0b5394}</style></head><body><main>";
    const TAIL: &str = "</main></body></html>";
    /// The follow-ups' form: one button per choice, each posting its code.
    const FOLLOW_UPS: &str = "<form method=\"post\" class=\"suite\">\
        <button type=\"submit\" name=\"suite\" value=\"contact_etabli\">Contact établi avec la \
        personne</button><button type=\"submit\" name=\"suite\" value=\"oriente\">Orientée vers \
        un autre service</button><button type=\"submit\" name=\"suite\" value=\"injoignable\">\
        Personne injoignable</button><button type=\"submit\" name=\"suite\" value=\"refus\">La \
        personne refuse l&#39;accompagnement</button><button type=\"submit\" name=\"suite\" \
        value=\"hors_perimetre\">Ne relève pas de notre service</button></form>";

    async fn rendered(page: &Page<'_>) -> (StatusCode, String) {
        let response = Templates::new().unwrap().render(page);
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn each_page_is_the_html_relais_has_always_served_byte_for_byte() {
        let confirm = Page::Confirm {
            alert_id: REFERENCE,
            label: LABEL,
            place: PLACE,
            emitted: "22/11/2026 à 08h15",
            colleague: None,
            acknowledged: None,
            follow_up: None,
            absence: None,
        };
        let pages: [(Page<'_>, StatusCode, &str); 7] = [
            (
                confirm,
                StatusCode::OK,
                "<h1>Alerte SOS94-1/2&#39;&lt;&amp;&gt;&quot;</h1><dl><dt>Type</dt>\
                 <dd>Signalement d&#39;isolement &lt;b&gt; &amp; &quot;x&quot; / y</dd>\
                 <dt>Territoire</dt><dd>L&#39;Haÿ-les-Roses (94038)</dd><dt>Émise le</dt>\
                 <dd>22/11/2026 à 08h15</dd></dl><p>En confirmant, vous indiquez à \
                 l'association et aux autres référents que l'alerte est vue et sera \
                 traitée.</p><form method=\"post\"><button type=\"submit\">J'ai pris \
                 connaissance de cette alerte</button></form>",
            ),
            (
                Page::Thanks {
                    alert_id: REFERENCE,
                    first: true,
                    follow_up: None,
                    absence: None,
                },
                StatusCode::OK,
                &format!(
                    "<h1>Merci</h1><p>L'alerte <strong>SOS94-1/2&#39;&lt;&amp;&gt;&quot;</strong> \
                     est notée comme prise en compte.</p><h2>Quelle suite avez-vous donnée ?</h2>\
                     <p>Dès que vous le savez, indiquez-la ici, ou plus tard en revenant sur ce \
                     lien.</p>{FOLLOW_UPS}"
                ),
            ),
            (
                Page::Thanks {
                    alert_id: REFERENCE,
                    first: false,
                    follow_up: Some("Personne injoignable"),
                    absence: None,
                },
                StatusCode::OK,
                &format!(
                    "<h1>Merci</h1><p>L'alerte <strong>SOS94-1/2&#39;&lt;&amp;&gt;&quot;</strong> \
                     est notée comme prise en compte (elle l'était déjà).</p><p>Suite donnée : \
                     Personne injoignable</p><h2>Quelle suite avez-vous donnée ?</h2><p>Dès que \
                     vous le savez, indiquez-la ici, ou plus tard en revenant sur ce lien.</p>\
                     {FOLLOW_UPS}"
                ),
            ),
            (
                Page::UnknownChoice,
                StatusCode::BAD_REQUEST,
                "<h1>Choix inconnu</h1><p>Ce choix n'est pas l'un de ceux que la page propose. \
                 Revenez sur le lien du courriel et appuyez sur l'un des boutons.</p>",
            ),
            (
                Page::RetryLater,
                StatusCode::SERVICE_UNAVAILABLE,
                "<h1>Réessayez dans un instant</h1><p>La prise en compte n'a pas pu être \
                 enregistrée. Rien n'est perdu : revenez sur ce lien et appuyez de nouveau \
                 sur le bouton.</p>",
            ),
            (
                Page::Expired,
                StatusCode::GONE,
                "<h1>Lien expiré</h1><p>Ce lien de prise en compte n'est plus valable. Si \
                 l'alerte vous concerne encore, contactez l'association qui vous l'a \
                 transmise.</p>",
            ),
            (
                Page::Unknown,
                StatusCode::NOT_FOUND,
                "<h1>Lien inconnu</h1><p>Ce lien n'est pas un lien de prise en compte \
                 valable. Ouvrez-le depuis le courriel reçu, sans le modifier.</p>",
            ),
        ];

        for (page, status, main) in pages {
            assert_eq!(
                rendered(&page).await,
                (status, format!("{HEAD}{main}{TAIL}"))
            );
        }
    }

    #[tokio::test]
    async fn a_referent_reads_who_acknowledged_first_and_what_was_done_then_the_follow_ups() {
        let alert = |colleague, acknowledged, follow_up| Page::Confirm {
            alert_id: "SOS75-1",
            label: "Orientation sociale",
            place: "Paris 13e Arrondissement (75113)",
            emitted: "22/11/2026 à 08h15",
            colleague,
            acknowledged,
            follow_up,
            absence: None,
        };
        let head = "<h1>Alerte SOS75-1</h1><dl><dt>Type</dt><dd>Orientation sociale</dd>\
            <dt>Territoire</dt><dd>Paris 13e Arrondissement (75113)</dd><dt>Émise le</dt>\
            <dd>22/11/2026 à 08h15</dd></dl>";
        let colleague = "<p class=\"note\"><strong>Déjà prise en compte par CCAS de Paris 13e \
            — Camille &lt;M&gt; le 22/11/2026 à 08:20</strong></p>";
        let by = || {
            Some(Colleague {
                by: "CCAS de Paris 13e — Camille <M>",
                at: "22/11/2026 à 08:20",
            })
        };

        let not_yet = rendered(&alert(by(), None, Some("Orientée vers un autre service"))).await;
        let acknowledged = rendered(&alert(by(), Some("22/11/2026 à 09:05"), None)).await;
        let contacted = rendered(&Page::FollowedUp {
            alert_id: "SOS75-1",
            follow_up: "Contact établi avec la personne",
            handed_back: false,
        })
        .await;
        let handed_back = rendered(&Page::FollowedUp {
            alert_id: "SOS75-1",
            follow_up: "Ne relève pas de notre service",
            handed_back: true,
        })
        .await;

        assert_eq!(
            not_yet,
            (
                StatusCode::OK,
                format!(
                    "{HEAD}{head}{colleague}<p>Suite donnée : Orientée vers un autre service</p>\
                     <p>En confirmant, vous indiquez à l'association et aux autres référents que \
                     l'alerte est vue et sera traitée.</p><form method=\"post\"><button \
                     type=\"submit\">J'ai pris connaissance de cette alerte</button></form>{TAIL}"
                )
            ),
            "the button still acknowledges for this référent too"
        );
        assert_eq!(
            acknowledged,
            (
                StatusCode::OK,
                format!(
                    "{HEAD}{head}{colleague}<p>Vous avez pris en compte cette alerte le 22/11/2026 \
                     à 09:05.</p><h2>Quelle suite avez-vous donnée ?</h2><p>Vous pourrez la \
                     modifier en revenant sur ce lien.</p>{FOLLOW_UPS}{TAIL}"
                )
            )
        );
        assert_eq!(
            contacted,
            (
                StatusCode::OK,
                format!(
                    "{HEAD}<h1>Merci</h1><p>La suite donnée à l'alerte <strong>SOS75-1</strong> \
                     est notée : Contact établi avec la personne.</p><p>Vous pouvez fermer cette \
                     page.</p><h2>Modifier la suite donnée</h2>{FOLLOW_UPS}{TAIL}"
                )
            )
        );
        assert_eq!(
            handed_back,
            (
                StatusCode::OK,
                format!(
                    "{HEAD}<h1>Alerte SOS75-1</h1><p>Merci : l'association est informée que cette \
                     alerte ne relève pas de votre service. Elle est transmise au référent de repli de \
                     votre réseau.</p><p>Vous pouvez fermer cette \
                     page.</p><h2>Modifier la suite donnée</h2>{FOLLOW_UPS}{TAIL}"
                )
            )
        );
    }

    #[tokio::test]
    async fn the_pages_of_a_valid_link_lead_to_the_referent_s_absence_page() {
        let link = "https://relais.example.org/absence/T0K'EN";
        let confirm = Page::Confirm {
            alert_id: "A-1",
            label: "Orientation sociale",
            place: "Paris 13e Arrondissement (75113)",
            emitted: "22/11/2026 à 08h15",
            colleague: None,
            acknowledged: None,
            follow_up: None,
            absence: Some(link),
        };
        let thanks = Page::Thanks {
            alert_id: "A-1",
            first: true,
            follow_up: None,
            absence: Some(link),
        };

        for page in [confirm, thanks] {
            let (status, html) = rendered(&page).await;

            assert_eq!(status, StatusCode::OK);
            assert!(
                html.ends_with(
                    "<p><a href=\"https://relais.example.org/absence/T0K&#39;EN\">Absent·e ? \
                     Indiquez vos dates d'absence</a></p></main></body></html>"
                ),
                "{html}"
            );
        }
    }

    async fn rendered_absence(page: &AbsencePage<'_>) -> (StatusCode, String) {
        let response = Templates::new().unwrap().render_absence(page);
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// A référent with a deputy, one absence of the registry and one of
    /// its own with days only the fallback covers.
    fn absences_view() -> AbsencesView {
        AbsencesView {
            referent: "Camille <Martin>".into(),
            network: "ccas".into(),
            notice: Some(Notice {
                ok: true,
                text: "Absence enregistrée le 10/12/2026 : elle compte dès maintenant pour les \
                       alertes."
                    .into(),
            }),
            absences: vec![
                AbsenceView {
                    id: None,
                    dates: "Du 24/12/2026 au 02/01/2027".into(),
                    deputy: None,
                    fallback_days: None,
                    nobody_days: None,
                },
                AbsenceView {
                    id: Some(7),
                    dates: "Du 10/12/2026 au 12/12/2026".into(),
                    deputy: Some("Dominique Petit".into()),
                    fallback_days: Some("Le 12/12/2026".into()),
                    nobody_days: None,
                },
            ],
            deputies: vec![("dominique".into(), "Dominique Petit".into())],
            today: "2026-12-10".into(),
            form: FormView::default(),
            valid_until: "10/03/2027".into(),
        }
    }

    #[tokio::test]
    async fn the_absence_page_lists_the_absences_and_says_when_the_fallback_stands_in() {
        let view = absences_view();

        let (status, html) = rendered_absence(&AbsencePage::Absences {
            status: StatusCode::OK,
            view: &view,
        })
        .await;

        assert_eq!(status, StatusCode::OK);
        assert!(html.starts_with("<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>relais — vos absences</title><style>"), "{html}");
        let main = html
            .split_once("<main>")
            .and_then(|(_, rest)| rest.split_once("</main>"))
            .map(|(main, _)| main)
            .unwrap();
        assert_eq!(
            main,
            "<h1>Vos absences</h1><p>Camille &lt;Martin&gt;, réseau ccas. Pendant vos absences, \
             relais adresse vos alertes à la personne qui vous remplace.</p><p class=\"ok\" \
             role=\"status\">Absence enregistrée le 10/12/2026 : elle compte dès maintenant pour \
             les alertes.</p><h2>Absences en cours et à venir</h2><ul><li><strong>Du 24/12/2026 \
             au 02/01/2027</strong><br><span class=\"small\">Inscrite au registre par \
             l'association : seuls ses opérateurs peuvent la modifier.</span></li><li><strong>Du \
             10/12/2026 au 12/12/2026</strong> · vous remplace : Dominique Petit<p \
             class=\"note\">Le 12/12/2026 : aucun·e de vos suppléant·es n'est présent·e ; ces \
             jours-là, les alertes iront au référent de repli du réseau.</p><form \
             method=\"post\"><input type=\"hidden\" name=\"action\" value=\"cancel\"><input \
             type=\"hidden\" name=\"id\" value=\"7\"><button type=\"submit\" \
             class=\"cancel\">Annuler cette absence</button></form></li></ul><h2>Déclarer une \
             absence</h2><form method=\"post\"><input type=\"hidden\" name=\"action\" \
             value=\"declare\"><label for=\"from\">Premier jour d'absence</label><input \
             type=\"date\" id=\"from\" name=\"from\" required min=\"2026-12-10\" value=\"\">\
             <label for=\"to\">Dernier jour d'absence (inclus)</label><input type=\"date\" \
             id=\"to\" name=\"to\" required min=\"2026-12-10\" value=\"\"><label \
             for=\"deputy\">Qui vous remplace</label><select id=\"deputy\" \
             name=\"deputy\"><option value=\"\">Vos suppléant·es présent·es</option><option \
             value=\"dominique\">Dominique Petit</option></select><button \
             type=\"submit\">Enregistrer l'absence</button></form><p class=\"small\">Ce lien \
             vous est personnel : ne le transférez pas. Il est valable jusqu'au 10/03/2027 ; \
             chaque courriel d'alerte en contient un nouveau.</p>"
        );
    }

    #[tokio::test]
    async fn a_refused_absence_says_why_and_a_bad_link_gets_a_4xx_page_with_the_same_headers() {
        let mut view = absences_view();
        view.notice = Some(Notice {
            ok: false,
            text: "Le dernier jour est avant le premier : vérifiez les dates.".into(),
        });
        view.form = FormView {
            from: "2026-12-12".into(),
            to: "2026-12-10".into(),
            deputy: "dominique".into(),
        };

        let (status, html) = rendered_absence(&AbsencePage::Absences {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            view: &view,
        })
        .await;
        let pages = [
            (AbsencePage::Unknown, StatusCode::NOT_FOUND),
            (AbsencePage::Expired, StatusCode::GONE),
            (AbsencePage::Gone, StatusCode::GONE),
            (AbsencePage::RetryLater, StatusCode::SERVICE_UNAVAILABLE),
        ];

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html.contains("<p class=\"error\" role=\"alert\">Le dernier jour est avant le premier : vérifiez les dates.</p>"), "{html}");
        assert!(html.contains("value=\"2026-12-12\">"), "{html}");
        assert!(
            html.contains("<option value=\"dominique\" selected>"),
            "{html}"
        );
        for (page, status) in pages {
            let response = Templates::new().unwrap().render_absence(&page);
            assert_eq!(response.status(), status);
            let headers = response.headers();
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
            assert!(
                headers[header::CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap()
                    .starts_with("default-src 'none';")
            );
        }
    }

    #[tokio::test]
    async fn a_page_is_served_with_the_headers_a_public_page_needs() {
        let response = Templates::new().unwrap().render(&Page::Expired);

        let headers = response.headers();
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers["x-robots-tag"], "noindex");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    }
}
