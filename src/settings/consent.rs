//! The `[consent]` section: whether an alert must say that the person
//! agreed to being reported (or on which legal basis they were not asked)
//! before relais shares it outside the care team.
//!
//! It refuses nothing. Turned off, it is a warning at start and in
//! `relais check`: the operator then answers for the legal basis of every
//! alert relais shares.

use serde::Deserialize;

/// Whether an alert must carry its `consent`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentSettings {
    /// `true` (the default): an alert without `consent` is dead-lettered as
    /// `invalid`, nobody emailed (one with `status = not_required` and its
    /// legal basis is delivered: its publisher declared why nobody was
    /// asked). `false`: an alert without it is delivered too, and its
    /// email says that it does not tell whether the person agreed. Checked
    /// when an alert is delivered, never again at its escalation steps.
    pub required: bool,
}

impl Default for ConsentSettings {
    fn default() -> Self {
        Self { required: true }
    }
}

impl ConsentSettings {
    /// A warning when alerts without consent are relayed: logged once at
    /// start, printed by `relais check`.
    pub(super) fn waived(&self) -> Option<String> {
        (!self.required).then(|| {
            "consent is not required (consent.required = false): alerts that do not say whether \
             the person agreed are relayed outside the care team all the same, so the operator \
             must have another legal basis for sharing them"
                .to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::Settings;
    use crate::settings::fixtures::{MINIMAL, env, write};

    #[test]
    fn consent_is_required_unless_the_operator_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);

        let default = Settings::load_with_env(Some(&file), env(&[])).unwrap();
        let waived =
            Settings::load_with_env(Some(&file), env(&[("RELAIS__CONSENT__REQUIRED", "false")]))
                .unwrap();

        assert!(default.consent.required);
        assert!(default.warnings.is_empty(), "{:?}", default.warnings);
        assert!(!waived.consent.required);
        assert_eq!(
            waived.warnings,
            [
                "consent is not required (consent.required = false): alerts that do not say \
                 whether the person agreed are relayed outside the care team all the same, so \
                 the operator must have another legal basis for sharing them"
            ]
        );
    }

    #[test]
    fn the_consent_section_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            &format!("{MINIMAL}\n[consent]\nrequire = false\n"),
        );

        let error = Settings::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();

        assert!(error.contains("unknown field `require`"), "{error}");
    }
}
