//! The report's figures, computed from the facts the store read for the
//! period (the engines only return rows): per group of the chosen axes,
//! how many alerts were received, delivered, bounced, dead-lettered,
//! acknowledged and how fast, escalated, declared unacknowledged, and what
//! the référents did about them.
//!
//! An alert counts once in a group whatever the number of its networks
//! there: figures count alerts (pseudonyms), not alert×network rows. It
//! is acknowledged when a network of the group acknowledged it, after the
//! time from its reception to the first of those acknowledgements.

use std::collections::{BTreeMap, BTreeSet};

use clap::ValueEnum;

use crate::availability::paris_date;
use crate::follow_up::FollowUp;
use crate::outcome::Reason;
use crate::store::ReportFact;

/// What the report's lines are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Axis {
    /// The association (its publisher id).
    Association,
    /// The network of the offices (ccas, cpam, caf…).
    Network,
    /// The alert's département.
    Departement,
    /// The alert's kind.
    Kind,
    /// The month (Paris) the alert was received.
    Month,
}

impl Axis {
    /// Its name in the JSON document.
    pub fn name(self) -> &'static str {
        match self {
            Self::Association => "association",
            Self::Network => "network",
            Self::Departement => "departement",
            Self::Kind => "kind",
            Self::Month => "month",
        }
    }

    /// Its name for the partners (table, CSV, HTML).
    pub fn label(self) -> &'static str {
        match self {
            Self::Association => "association",
            Self::Network => "réseau",
            Self::Departement => "département",
            Self::Kind => "type",
            Self::Month => "mois",
        }
    }

    /// The value of `fact` on this axis; `-` where it is not known (an
    /// alert dead-lettered before any network, or unreadable).
    fn of(self, fact: &ReportFact) -> String {
        let known = |value: Option<&str>| match value {
            Some(value) if !value.is_empty() => value.to_owned(),
            _ => "-".to_owned(),
        };
        match self {
            Self::Association => known(Some(&fact.publisher)),
            Self::Network => known(Some(&fact.network)),
            Self::Departement => known(fact.departement.as_deref()),
            Self::Kind => known(fact.kind.as_deref()),
            Self::Month => month(fact.received_at),
        }
    }
}

/// `YYYY-MM`, the Paris month of `at`.
pub fn month(at: time::OffsetDateTime) -> String {
    let date = paris_date(at);
    format!("{:04}-{:02}", date.year(), u8::from(date.month()))
}

/// The figures of one group of alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Distinct alerts.
    pub received: usize,
    pub delivered: usize,
    pub bounced: usize,
    pub dead_lettered: usize,
    /// By reason code, every reason present (zero included).
    pub dead_by_reason: BTreeMap<&'static str, usize>,
    pub acknowledged: usize,
    /// Seconds from reception to the first acknowledgement: the median and
    /// the 90th percentile (nearest rank); `None` when none was timed.
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
    pub escalated: usize,
    pub unacknowledged: usize,
    /// By follow-up code, every code present (zero included).
    pub outcomes: BTreeMap<&'static str, usize>,
}

/// One line of the report: its values on the axes, and its figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub key: Vec<String>,
    pub figures: Figures,
}

/// The lines, by the axes' values, and the whole period's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figured {
    pub axes: Vec<Axis>,
    pub lines: Vec<Line>,
    pub total: Figures,
}

/// The figures of `facts` grouped by `axes` (in their order).
pub fn figure(facts: &[ReportFact], axes: &[Axis]) -> Figured {
    let mut groups: BTreeMap<Vec<String>, Vec<&ReportFact>> = BTreeMap::new();
    for fact in facts {
        let key = axes.iter().map(|axis| axis.of(fact)).collect();
        groups.entry(key).or_default().push(fact);
    }
    Figured {
        axes: axes.to_vec(),
        lines: groups
            .into_iter()
            .map(|(key, facts)| Line {
                key,
                figures: figures(&facts),
            })
            .collect(),
        total: figures(&facts.iter().collect::<Vec<_>>()),
    }
}

/// What one alert's rows of a group say of it.
#[derive(Default)]
struct Alert {
    received_at: Option<time::OffsetDateTime>,
    delivered: bool,
    bounced: bool,
    dead: Option<String>,
    acknowledged_at: Option<time::OffsetDateTime>,
    escalated: bool,
    unacknowledged: bool,
    outcomes: BTreeSet<String>,
}

fn figures(facts: &[&ReportFact]) -> Figures {
    let mut alerts: BTreeMap<&str, Alert> = BTreeMap::new();
    for fact in facts {
        let alert = alerts.entry(&fact.alert).or_default();
        alert.received_at = Some(
            alert
                .received_at
                .map_or(fact.received_at, |at| at.min(fact.received_at)),
        );
        alert.delivered |= fact.delivered_at.is_some();
        alert.bounced |= fact.bounced_at.is_some();
        if fact.dead_reason.is_some() {
            alert.dead.clone_from(&fact.dead_reason);
        }
        if let Some(at) = fact.acknowledged_at {
            alert.acknowledged_at = Some(alert.acknowledged_at.map_or(at, |first| first.min(at)));
        }
        alert.escalated |= fact.escalated > 0;
        alert.unacknowledged |= fact.unacknowledged;
        alert.outcomes.extend(fact.outcome.clone());
    }
    let mut figures = Figures {
        received: alerts.len(),
        ..Figures::default()
    };
    let mut waits = Vec::new();
    for alert in alerts.values() {
        figures.delivered += usize::from(alert.delivered);
        figures.bounced += usize::from(alert.bounced);
        if let Some(reason) = &alert.dead {
            figures.dead_lettered += 1;
            *figures
                .dead_by_reason
                .entry(reason_code(reason))
                .or_default() += 1;
        }
        if let Some(at) = alert.acknowledged_at {
            figures.acknowledged += 1;
            // Timed from the reception only when the delivery's fact
            // says when that was.
            if alert.delivered
                && let Some(received) = alert.received_at
            {
                waits.push((at - received).whole_seconds().max(0));
            }
        }
        figures.escalated += usize::from(alert.escalated);
        figures.unacknowledged += usize::from(alert.unacknowledged);
        for code in &alert.outcomes {
            *figures.outcomes.entry(follow_up_code(code)).or_default() += 1;
        }
    }
    waits.sort_unstable();
    figures.median_seconds = nearest_rank(&waits, 50);
    figures.p90_seconds = nearest_rank(&waits, 90);
    figures
}

/// The `percent`th percentile of `sorted`, by nearest rank.
fn nearest_rank(sorted: &[i64], percent: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The reason code as relais knows it (`other` for one a newer relais wrote).
fn reason_code(code: &str) -> &'static str {
    code.parse::<Reason>().map_or("other", Reason::as_str)
}

/// The follow-up code as relais knows it (`other` otherwise).
fn follow_up_code(code: &str) -> &'static str {
    FollowUp::parse(code).map_or("other", FollowUp::code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use time::macros::datetime;

    fn fact(alert: &str, network: &str, publisher: &str, at: OffsetDateTime) -> ReportFact {
        ReportFact {
            alert: alert.into(),
            network: network.into(),
            publisher: publisher.into(),
            departement: Some("75".into()),
            kind: Some("orientation_sociale".into()),
            received_at: at,
            delivered_at: Some(at),
            bounced_at: None,
            dead_reason: None,
            acknowledged_at: None,
            escalated: 0,
            unacknowledged: false,
            outcome: None,
        }
    }

    #[test]
    fn an_alert_of_two_networks_counts_once_but_once_in_each_network() {
        let at = datetime!(2026-03-31 21:30 UTC);
        let facts = [
            ReportFact {
                acknowledged_at: Some(at + time::Duration::minutes(30)),
                outcome: Some("oriente".into()),
                ..fact("a1", "ccas", "sos75", at)
            },
            ReportFact {
                acknowledged_at: Some(at + time::Duration::minutes(10)),
                ..fact("a1", "caf", "sos75", at)
            },
            fact("a2", "ccas", "sos75", at),
        ];

        let by_association = figure(&facts, &[Axis::Association]);
        let by_network = figure(&facts, &[Axis::Network]);
        let by_month = figure(&facts, &[Axis::Month]);

        let line = &by_association.lines[0].figures;
        assert_eq!(by_association.lines.len(), 1);
        assert_eq!(
            (line.received, line.delivered, line.acknowledged),
            (2, 2, 1)
        );
        assert_eq!(line.median_seconds, Some(600));
        assert_eq!(line.outcomes, BTreeMap::from([("oriente", 1)]));
        let networks: Vec<(&str, usize, Option<i64>)> = by_network
            .lines
            .iter()
            .map(|l| {
                (
                    l.key[0].as_str(),
                    l.figures.received,
                    l.figures.median_seconds,
                )
            })
            .collect();
        assert_eq!(networks, [("caf", 1, Some(600)), ("ccas", 2, Some(1800))]);
        // 21:30 UTC on 31 March is 23:30 in Paris: March still.
        assert_eq!(by_month.lines[0].key, ["2026-03"]);
    }

    #[test]
    fn the_percentiles_are_taken_by_nearest_rank() {
        let waits: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&waits, 50), Some(5));
        assert_eq!(nearest_rank(&waits, 90), Some(9));
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[], 50), None);
    }
}
