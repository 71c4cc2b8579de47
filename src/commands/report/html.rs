//! The report as one HTML page for the partners: self-contained (inline
//! CSS, inline SVG charts, no script, nothing fetched from elsewhere), in
//! French, readable on a phone. The table of the figures, then three
//! charts: the alerts received per month by association (stacked bars),
//! the time to acknowledgement per network (median and 90th percentile),
//! and what the offices did about the alerts.
//!
//! Every text from outside (a publisher id, a network, a kind) is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use time::Date;

use super::figures::{Axis, Figured, figure};
use super::{duration, rows};
use crate::follow_up::FollowUp;
use crate::store::ReportFact;

/// The bars' colours, one per association in turn.
const PALETTE: [&str; 8] = [
    "#1f5fa8", "#e07b00", "#2e8b57", "#b8336a", "#6a4c93", "#8c6d1f", "#00838f", "#555555",
];

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0;
       color: #1b1b1b; background: #fff; line-height: 1.4; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; margin: 0.5rem 0 0.25rem; }
h2 { font-size: 1.1rem; margin: 1.75rem 0 0.5rem; }
p.period { color: #555; margin: 0 0 1rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { padding: 0.3rem 0.5rem; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { text-align: left; background: #f3f5f8; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; border-top: 2px solid #999; }
svg { width: 100%; height: auto; display: block; }
svg text { font-size: 12px; fill: #1b1b1b; }
.legend { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; font-size: 0.85rem; padding: 0;
          list-style: none; }
.legend span { display: inline-block; width: 0.8rem; height: 0.8rem; margin-right: 0.3rem;
               vertical-align: middle; }
footer { color: #666; font-size: 0.8rem; margin: 2rem 0 1rem; }
";

/// The page of `figured` (the table, grouped as asked) and of `facts` (the
/// charts), for the period `from`–`to` whose months are `months`.
pub fn page(
    facts: &[ReportFact],
    figured: &Figured,
    from: Date,
    to: Date,
    months: &[String],
) -> String {
    let period = format!("du {} au {}", french(from), french(to));
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Rapport de la convention : alertes {period}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>Rapport de la convention</h1>\n<p class=\"period\">Alertes reçues {period}</p>\n"
    );
    html.push_str("<h2>Chiffres</h2>\n");
    html.push_str(&summary(figured));
    html.push_str("<h2>Alertes reçues par mois et par association</h2>\n");
    html.push_str(&per_month(facts, months));
    html.push_str("<h2>Délai d'accusé de réception par réseau</h2>\n");
    html.push_str(&waits(facts));
    html.push_str("<h2>Suites données</h2>\n");
    html.push_str(&outcomes(figured));
    html.push_str(
        "<footer>Établi par relais à partir de faits sans donnée de patient, sans nom ni \
         identifiant de référent et sans texte libre. Délai : de la réception de l'alerte au \
         premier accusé de réception (médiane et 90<sup>e</sup> centile).</footer>\n\
         </main>\n</body>\n</html>\n",
    );
    html
}

/// `14 juillet 2026`.
fn french(date: Date) -> String {
    const MONTHS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    let month = MONTHS[usize::from(u8::from(date.month())) - 1];
    format!("{} {month} {}", date.day(), date.year())
}

/// The table of the figures, as the text table has them.
fn summary(figured: &Figured) -> String {
    let rows = rows(figured, false, "", duration);
    let axes = figured.axes.len();
    let last = rows.len().saturating_sub(1);
    let mut html = String::from("<div class=\"scroll\"><table>\n");
    for (index, row) in rows.iter().enumerate() {
        let class = if index == last {
            " class=\"total\""
        } else {
            ""
        };
        let _ = write!(html, "<tr{class}>");
        for (column, cell) in row.iter().enumerate() {
            let cell = escape(cell);
            if index == 0 {
                let _ = write!(html, "<th>{cell}</th>");
            } else if column < axes {
                let _ = write!(html, "<td>{cell}</td>");
            } else {
                let _ = write!(html, "<td class=\"n\">{cell}</td>");
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table></div>\n");
    html
}

/// Stacked bars: per month, the alerts of each association.
fn per_month(facts: &[ReportFact], months: &[String]) -> String {
    let figured = figure(facts, &[Axis::Month, Axis::Association]);
    let mut associations: Vec<&str> = figured
        .lines
        .iter()
        .map(|line| line.key[1].as_str())
        .collect();
    associations.sort_unstable();
    associations.dedup();
    let counts: BTreeMap<(&str, &str), usize> = figured
        .lines
        .iter()
        .map(|line| {
            (
                (line.key[0].as_str(), line.key[1].as_str()),
                line.figures.received,
            )
        })
        .collect();
    let totals: Vec<usize> = months
        .iter()
        .map(|month| {
            associations
                .iter()
                .map(|a| counts.get(&(month.as_str(), *a)).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let highest = totals.iter().copied().max().unwrap_or(0).max(1);
    let (width, height, left, bottom, top) = (600.0, 240.0, 36.0, 40.0, 12.0);
    let plot = height - bottom - top;
    let step = (width - left) / months.len().max(1) as f64;
    let bar = step * 0.7;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-label=\"Alertes reçues par mois et par association\">\n"
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#999\"/>\
         <line x1=\"{left}\" y1=\"{0}\" x2=\"{width}\" y2=\"{0}\" stroke=\"#999\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{highest}</text>\
         <text x=\"{2}\" y=\"{}\" text-anchor=\"end\">0</text>",
        top + plot,
        left - 4.0,
        top + 10.0,
        top + plot,
    );
    for (index, month) in months.iter().enumerate() {
        let x = left + step * index as f64 + (step - bar) / 2.0;
        let mut y = top + plot;
        for (colour, association) in associations.iter().enumerate() {
            let count = counts
                .get(&(month.as_str(), *association))
                .copied()
                .unwrap_or(0);
            if count == 0 {
                continue;
            }
            let h = plot * count as f64 / highest as f64;
            y -= h;
            let _ = writeln!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" \
                 fill=\"{}\"><title>{} {}: {count}</title></rect>",
                PALETTE[colour % PALETTE.len()],
                escape(association),
                escape(month),
            );
        }
        if totals[index] > 0 {
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bar / 2.0,
                y - 3.0,
                totals[index]
            );
        }
        // The month's number under its bar (`03` of `2026-03`).
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x + bar / 2.0,
            top + plot + 16.0,
            escape(month.get(5..).unwrap_or(month)),
        );
    }
    svg.push_str("</svg>\n<ul class=\"legend\">");
    for (colour, association) in associations.iter().enumerate() {
        let _ = write!(
            svg,
            "<li><span style=\"background:{}\"></span>{}</li>",
            PALETTE[colour % PALETTE.len()],
            escape(association)
        );
    }
    svg.push_str("</ul>\n");
    svg
}

/// Horizontal bars: per network, the median and 90th percentile of the
/// time to acknowledgement.
fn waits(facts: &[ReportFact]) -> String {
    let figured = figure(facts, &[Axis::Network]);
    let lines: Vec<(&str, i64, i64)> = figured
        .lines
        .iter()
        .filter_map(|line| {
            let median = line.figures.median_seconds?;
            let p90 = line.figures.p90_seconds.unwrap_or(median);
            Some((line.key[0].as_str(), median, p90))
        })
        .collect();
    if lines.is_empty() {
        return "<p>Aucun accusé de réception sur la période.</p>\n".to_owned();
    }
    let bars: Vec<Group> = lines
        .iter()
        .map(|(network, median, p90)| Group {
            name: (*network).to_owned(),
            bars: vec![
                Bar {
                    value: *median as f64,
                    words: format!("médiane {}", duration(Some(*median))),
                    colour: PALETTE[0],
                },
                Bar {
                    value: *p90 as f64,
                    words: format!("90e centile {}", duration(Some(*p90))),
                    colour: PALETTE[1],
                },
            ],
        })
        .collect();
    let mut html = bar_chart(&bars, "Délai d'accusé de réception par réseau");
    let _ = writeln!(
        html,
        "<ul class=\"legend\"><li><span style=\"background:{}\"></span>médiane</li>\
         <li><span style=\"background:{}\"></span>90<sup>e</sup> centile</li></ul>",
        PALETTE[0], PALETTE[1]
    );
    html
}

/// Horizontal bars: per follow-up, the alerts of the period it was the
/// last one recorded of a network.
fn outcomes(figured: &Figured) -> String {
    let bars: Vec<Group> = FollowUp::ALL
        .iter()
        .map(|choice| {
            let count = figured
                .total
                .outcomes
                .get(choice.code())
                .copied()
                .unwrap_or(0);
            Group {
                name: choice.label().to_owned(),
                bars: vec![Bar {
                    value: count as f64,
                    words: count.to_string(),
                    colour: PALETTE[2],
                }],
            }
        })
        .collect();
    bar_chart(&bars, "Suites données")
}

/// One bar of a chart: its length's value, the words at its end, its
/// colour.
struct Bar {
    value: f64,
    words: String,
    colour: &'static str,
}

/// The bars of one label.
struct Group {
    name: String,
    bars: Vec<Bar>,
}

/// Horizontal bars, a group of bars per label, each bar with its value's
/// words at its end.
fn bar_chart(groups: &[Group], title: &str) -> String {
    let (width, label, gap, thickness) = (600.0, 200.0, 10.0, 16.0);
    let highest = groups
        .iter()
        .flat_map(|group| group.bars.iter().map(|bar| bar.value))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let room = width - label - 130.0;
    let per_group = groups.first().map_or(1, |group| group.bars.len()) as f64 * thickness + gap;
    let height = per_group * groups.len() as f64 + gap;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">\n",
        escape(title)
    );
    for (index, Group { name, bars }) in groups.iter().enumerate() {
        let y = gap + per_group * index as f64;
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label - 6.0,
            y + thickness * bars.len() as f64 / 2.0 + 4.0,
            escape(name)
        );
        for (
            place,
            Bar {
                value,
                words,
                colour,
            },
        ) in bars.iter().enumerate()
        {
            let top = y + thickness * place as f64;
            let length = room * value / highest;
            let _ = writeln!(
                svg,
                "<rect x=\"{label}\" y=\"{top:.1}\" width=\"{length:.1}\" height=\"{:.1}\" \
                 fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                thickness - 2.0,
                label + length + 4.0,
                top + thickness - 5.0,
                escape(words)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// `text` safe in HTML's text and attributes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_page_fetches_nothing_and_escapes_what_came_from_outside() {
        let fact = ReportFact {
            alert: "0123".into(),
            network: "ccas".into(),
            publisher: "<sos&75>".into(),
            departement: Some("75".into()),
            kind: Some("orientation_sociale".into()),
            received_at: time::macros::datetime!(2026-03-02 10:00 UTC),
            delivered_at: Some(time::macros::datetime!(2026-03-02 10:00 UTC)),
            bounced_at: None,
            dead_reason: None,
            acknowledged_at: Some(time::macros::datetime!(2026-03-02 10:05 UTC)),
            escalated: 0,
            unacknowledged: false,
            outcome: Some("oriente".into()),
        };
        let facts = [fact];
        let figured = figure(&facts, &[Axis::Association]);
        let months = ["2026-03".to_owned()];

        let page = page(
            &facts,
            &figured,
            date!(2026 - 01 - 01),
            date!(2026 - 12 - 31),
            &months,
        );

        assert!(page.contains("<title>Rapport de la convention : alertes du 1 janvier 2026 au 31 décembre 2026</title>"));
        assert!(page.contains("&lt;sos&amp;75&gt;"));
        assert!(!page.contains("<sos"));
        for outside in ["http://", "https://", "<script", "src=", "url("] {
            assert!(!page.contains(outside), "{outside}");
        }
    }
}
