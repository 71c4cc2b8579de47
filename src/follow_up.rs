//! What a référent did about an alert once they had it, the "suite
//! donnée": a closed list, chosen with a button of the acknowledgement
//! page, never free text, so that nothing said of the person reaches relais.
//!
//! This module only names the choices, with their code (in the store, the
//! `followed_up` event, the metrics and `relais audit`) and the words the
//! référent reads on the page. It depends on nothing, so that the pages,
//! the store, the events and the commands can all speak of them.

use std::fmt;

/// One of the follow-ups a référent may record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FollowUp {
    /// The office reached the person.
    ContactEtabli,
    /// The person was directed to another service.
    Oriente,
    /// The office could not reach the person.
    Injoignable,
    /// The person declined the office's help.
    Refus,
    /// The alert is not the office's to handle: handed back to the
    /// association.
    HorsPerimetre,
}

impl FollowUp {
    /// Every choice, in the order the page offers them.
    pub const ALL: [Self; 5] = [
        Self::ContactEtabli,
        Self::Oriente,
        Self::Injoignable,
        Self::Refus,
        Self::HorsPerimetre,
    ];

    /// Its code: what the store keeps and the event says.
    pub fn code(self) -> &'static str {
        match self {
            Self::ContactEtabli => "contact_etabli",
            Self::Oriente => "oriente",
            Self::Injoignable => "injoignable",
            Self::Refus => "refus",
            Self::HorsPerimetre => "hors_perimetre",
        }
    }

    /// The words of its button, as the référent reads them.
    pub fn label(self) -> &'static str {
        match self {
            Self::ContactEtabli => "Contact établi avec la personne",
            Self::Oriente => "Orientée vers un autre service",
            Self::Injoignable => "Personne injoignable",
            Self::Refus => "La personne refuse l'accompagnement",
            Self::HorsPerimetre => "Ne relève pas de notre service",
        }
    }

    /// The follow-up of code `code`; `None` for any other text.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|choice| choice.code() == code)
    }
}

impl fmt::Display for FollowUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_reads_back_as_its_follow_up_and_nothing_else_does() {
        for choice in FollowUp::ALL {
            assert_eq!(FollowUp::parse(choice.code()), Some(choice));
        }
        for other in ["", "CONTACT_ETABLI", "contact_etabli ", "autre"] {
            assert_eq!(FollowUp::parse(other), None, "{other:?}");
        }
    }
}
