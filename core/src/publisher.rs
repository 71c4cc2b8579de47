//! Who may publish what: the registry's `[[publisher]]` entries, and the
//! check every alert passes before anyone is emailed.
//!
//! The broker vouches for a publisher's identity: RabbitMQ refuses a
//! message whose `user_id` property is not the login that publishes it. A
//! publisher entry ties that login to one association, the territories it
//! may alert about and, optionally, the kinds it may send; so that a broker
//! user of one association cannot alert another territory's offices, nor
//! sign as another association.
//!
//! With no entry at all, every alert is accepted (the registry of a first
//! deployment, and of the tests that do not speak of publishers); `relais
//! check` then warns that any broker user may publish for any territory.
//! This module never reads an alert's patient data, and its errors never
//! quote the alert's values: they name the rule and the publisher.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use thiserror::Error;

use crate::alert::{Alert, Kind};
use crate::geography::{Geography, Location};
use crate::territory::{Commune, Departement};

/// The longest RabbitMQ user name (`user_id` is an AMQP short string).
const USER_MAX_BYTES: usize = 255;

/// Why an alert's publisher may not send it; the `x-relais-error` of a
/// dead letter with reason `forbidden`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Forbidden {
    #[error(
        "the message has no `user_id`: the registry declares its publishers, \
         so every alert must carry its publisher's RabbitMQ user in `user_id`"
    )]
    Anonymous,
    #[error("broker user `{0}` is not a [[publisher]] of the registry")]
    UnknownUser(String),
    #[error("the alert's `association` is not the one of publisher `{0}`")]
    Association(String),
    #[error("the alert's territory is outside publisher `{0}`'s `communes` and `departements`")]
    Territory(String),
    #[error("publisher `{user}` may not send alerts of kind `{kind}` (see its `kinds`)")]
    Kind { user: String, kind: String },
}

/// A publisher entry as written in the registry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPublisher {
    user: String,
    association: String,
    #[serde(default)]
    communes: Vec<String>,
    #[serde(default)]
    departements: Vec<String>,
    #[serde(default)]
    everywhere: bool,
    #[serde(default)]
    kinds: Option<Vec<String>>,
    /// Who writes its alerts, as the email names them (`un médecin`, `un
    /// ou une bénévole`), unless their route names them.
    #[serde(default)]
    author: Option<String>,
    /// Where the référents' replies go (the email's `Reply-To`): the
    /// association's regulation desk, say.
    #[serde(default)]
    contact: Option<String>,
}

/// One dispatch software's rights.
#[derive(Debug)]
struct Publisher {
    association: String,
    communes: HashSet<Commune>,
    departements: HashSet<Departement>,
    everywhere: bool,
    /// `None`: every kind.
    kinds: Option<HashSet<Kind>>,
    author: Option<String>,
    contact: Option<lettre::message::Mailbox>,
}

/// The registry's publishers, by RabbitMQ user.
#[derive(Debug, Default)]
pub struct Publishers {
    by_user: HashMap<String, Publisher>,
}

impl Publishers {
    /// Validates the entries, pushing every error found to `errors`.
    pub(crate) fn build(
        raw: Vec<RawPublisher>,
        geography: &Geography,
        errors: &mut Vec<String>,
    ) -> Self {
        let mut by_user = HashMap::with_capacity(raw.len());
        let mut users = HashSet::with_capacity(raw.len());
        for (position, raw) in raw.into_iter().enumerate() {
            let at = format!("publisher #{} ({:?})", position + 1, raw.user);
            let before = errors.len();
            let printable =
                |text: &str| !text.trim().is_empty() && !text.chars().any(char::is_control);
            if !printable(&raw.user) || raw.user.len() > USER_MAX_BYTES {
                errors.push(format!(
                    "{at}: `user` must be a RabbitMQ user name (1 to {USER_MAX_BYTES} bytes, one line)"
                ));
            }
            if !printable(&raw.association) {
                errors.push(format!(
                    "{at}: `association` must be one non-empty line of text"
                ));
            }
            let mut communes = HashSet::with_capacity(raw.communes.len());
            for code in &raw.communes {
                match geography.check_current(code) {
                    Ok(commune) => {
                        communes.insert(commune);
                    }
                    Err(error) => errors.push(format!("{at}: commune {code:?} {error}")),
                }
            }
            let mut departements = HashSet::with_capacity(raw.departements.len());
            for code in &raw.departements {
                match Departement::parse(code) {
                    Ok(departement) if geography.has_departement(departement) => {
                        departements.insert(departement);
                    }
                    Ok(_) => errors.push(format!(
                        "{at}: département {code:?} is not a département of the official geography"
                    )),
                    Err(error) => errors.push(format!("{at}: département {code:?} {error}")),
                }
            }
            let listed = !raw.communes.is_empty() || !raw.departements.is_empty();
            if raw.everywhere && listed {
                errors.push(format!(
                    "{at}: `everywhere = true` with `communes` or `departements`: give one or the other"
                ));
            } else if !raw.everywhere && !listed {
                errors.push(format!(
                    "{at}: may alert about no territory: give `communes`, `departements`, or `everywhere = true`"
                ));
            }
            let kinds = raw.kinds.map(|kinds| {
                if kinds.is_empty() {
                    errors.push(format!(
                        "{at}: `kinds` is empty; leave it out to allow every kind"
                    ));
                }
                kinds
                    .iter()
                    .filter_map(|kind| {
                        Kind::parse(kind)
                            .map_err(|problem| errors.push(format!("{at}: the kind {problem}")))
                            .ok()
                    })
                    .collect()
            });
            if raw
                .author
                .as_deref()
                .is_some_and(|author| !printable(author) || author.len() > 80)
            {
                errors.push(format!(
                    "{at}: `author` must be one line of text, at most 80 bytes (e.g. \"un médecin\")"
                ));
            }
            let contact = raw.contact.as_deref().and_then(|contact| {
                contact
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|_| {
                        errors.push(format!(
                            "{at}: `contact` must be an email address (e.g. \"regulation@sos75.example.org\")"
                        ));
                    })
                    .ok()
            });
            if !users.insert(raw.user.clone()) {
                errors.push(format!(
                    "{at}: this user already has a [[publisher]]; one entry per RabbitMQ user"
                ));
            }
            if errors.len() > before {
                continue;
            }
            by_user.insert(
                raw.user,
                Publisher {
                    association: raw.association,
                    communes,
                    departements,
                    everywhere: raw.everywhere,
                    kinds,
                    author: raw.author,
                    contact,
                },
            );
        }
        by_user.shrink_to_fit();
        Self { by_user }
    }

    /// Whether the registry declares any publisher: with none, every alert
    /// is accepted.
    pub fn declared(&self) -> bool {
        !self.by_user.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// Who writes the alerts of broker user `user`, as its entry says.
    pub fn author(&self, user: &str) -> Option<&str> {
        self.by_user.get(user)?.author.as_deref()
    }

    /// Where replies to the emails about `user`'s alerts go, as its entry
    /// says.
    pub fn contact(&self, user: &str) -> Option<&lettre::message::Mailbox> {
        self.by_user.get(user)?.contact.as_ref()
    }

    /// Each declared publisher's entry as text, by user, field by field
    /// (`association`, `territories`, `kinds`, `author`, `contact`; sets
    /// sorted): what `relais registry diff` compares.
    pub fn described(&self) -> BTreeMap<&str, [(&'static str, String); 5]> {
        fn sorted<T: ToString>(items: impl Iterator<Item = T>) -> String {
            let mut items: Vec<String> = items.map(|item| item.to_string()).collect();
            items.sort_unstable();
            items.join(", ")
        }
        let none = || "none".to_owned();
        self.by_user
            .iter()
            .map(|(user, p)| {
                let territories = if p.everywhere {
                    "everywhere".to_owned()
                } else {
                    let communes = sorted(p.communes.iter());
                    let departements = sorted(p.departements.iter());
                    [("communes", communes), ("departements", departements)]
                        .into_iter()
                        .filter(|(_, codes)| !codes.is_empty())
                        .map(|(level, codes)| format!("{level} {codes}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                let kinds = p.kinds.as_ref().map_or_else(
                    || "all".to_owned(),
                    |kinds| sorted(kinds.iter().map(Kind::as_str)),
                );
                let described = [
                    ("association", p.association.clone()),
                    ("territories", territories),
                    ("kinds", kinds),
                    ("author", p.author.clone().unwrap_or_else(none)),
                    (
                        "contact",
                        p.contact.as_ref().map_or_else(none, ToString::to_string),
                    ),
                ];
                (user.as_str(), described)
            })
            .collect()
    }

    /// Whether broker user `user` has a `[[publisher]]` entry.
    pub fn declares(&self, user: &str) -> bool {
        self.by_user.contains_key(user)
    }

    /// Whether the broker user `user` (the message's `user_id`, as the
    /// broker vouches for it) may publish `alert`, which lies at `location`
    /// (an arrondissement is within its commune).
    ///
    /// # Errors
    /// [`Forbidden`] naming the first rule broken, in the order: identity,
    /// association, kind, territory.
    pub fn authorize(
        &self,
        user: Option<&str>,
        alert: &Alert,
        location: &Location,
    ) -> Result<(), Forbidden> {
        if !self.declared() {
            return Ok(());
        }
        let user = user.ok_or(Forbidden::Anonymous)?;
        let publisher = self
            .by_user
            .get(user)
            .ok_or_else(|| Forbidden::UnknownUser(user.to_owned()))?;
        if publisher.association != alert.association() {
            return Err(Forbidden::Association(user.to_owned()));
        }
        if let Some(kinds) = &publisher.kinds
            && !kinds.contains(alert.kind())
        {
            return Err(Forbidden::Kind {
                user: user.to_owned(),
                kind: alert.kind().to_string(),
            });
        }
        let listed = |commune: Option<Commune>| {
            commune.is_some_and(|commune| publisher.communes.contains(&commune))
        };
        let within = publisher.everywhere
            || publisher.departements.contains(&location.departement)
            || listed(location.arrondissement)
            || listed(location.commune);
        if !within {
            return Err(Forbidden::Territory(user.to_owned()));
        }
        Ok(())
    }
}
