//! `relais report`: the convention's yearly report, for the partners who
//! evaluate it: per association (or network, département, kind, month),
//! how many alerts were received, delivered, bounced, dead-lettered,
//! acknowledged and how fast, escalated, left unacknowledged, and what the
//! offices did about them. An aligned table, CSV for a spreadsheet, JSON,
//! or one self-contained HTML page with its charts (`html`).
//!
//! It reads the store's report facts (`store::report`), which hold no
//! référent, address, patient data or free text, so it needs no entry in
//! the operator trace; the figures are computed here (`figures`), above
//! the engines.

mod figures;
mod html;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::availability::{DATE, paris_date, paris_offset};
use crate::follow_up::FollowUp;
use crate::outcome::Reason;
use crate::settings::Settings;
use crate::store::AuditReader;
use figures::{Axis, Figured, Figures, figure};

/// Which period, grouped how, printed how.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The first day of the period (Paris), YYYY-MM-DD; default: 1 January
    /// of last year.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub from: Option<Date>,
    /// The last day of the period (Paris, included), YYYY-MM-DD; default:
    /// 31 December of last year.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub to: Option<Date>,
    /// What the lines are grouped by: one or several, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "association")]
    pub by: Vec<Axis>,
    /// CSV for a spreadsheet (UTF-8 with a BOM, `;`-separated), with the
    /// dead letters by reason.
    #[arg(long, conflicts_with_all = ["json", "html"])]
    pub csv: bool,
    /// One JSON document, for scripts.
    #[arg(long, conflicts_with = "html")]
    pub json: bool,
    /// One self-contained HTML page with charts, written to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

fn parse_date(text: &str) -> Result<Date, String> {
    Date::parse(text, DATE).map_err(|_| "is not a date written YYYY-MM-DD".to_owned())
}

/// The period of a report: Paris dates, both included.
#[derive(Debug, Clone, Copy)]
struct Period {
    from: Date,
    to: Date,
}

impl Period {
    /// The period asked for; by default the last full calendar year.
    fn of(args: &ReportArgs, today: Date) -> anyhow::Result<Self> {
        let last_year = today.year() - 1;
        let from = match args.from {
            Some(from) => from,
            None => Date::from_calendar_date(last_year, Month::January, 1)?,
        };
        let to = match args.to {
            Some(to) => to,
            None => Date::from_calendar_date(last_year, Month::December, 31)?,
        };
        if to < from {
            bail!("--to ({to}) is before --from ({from})");
        }
        Ok(Self { from, to })
    }

    /// The instants it spans: from the first day's midnight in Paris to
    /// the midnight after the last day.
    fn instants(self) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
        let after = self.to.next_day().context("--to is past the calendar")?;
        Ok((paris_midnight(self.from), paris_midnight(after)))
    }

    /// Every month it touches, `YYYY-MM`, first first.
    fn months(self) -> Vec<String> {
        let mut months = Vec::new();
        let (mut year, mut month) = (self.from.year(), self.from.month());
        while (year, u8::from(month)) <= (self.to.year(), u8::from(self.to.month())) {
            months.push(format!("{year:04}-{:02}", u8::from(month)));
            if month == Month::December {
                year += 1;
            }
            month = month.next();
        }
        months
    }
}

/// Midnight in Paris at the start of `date` (no change of time falls at
/// midnight in Paris: the offset at midnight UTC is Paris's at its own).
fn paris_midnight(date: Date) -> OffsetDateTime {
    let utc = PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc();
    PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_offset(paris_offset(utc))
}

/// `relais report`: the figures of the alerts received in the period.
pub(super) async fn report(config: Option<&Path>, args: &ReportArgs) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let period = Period::of(args, paris_date(OffsetDateTime::now_utc()))?;
    let (from, to) = period.instants()?;
    let reader = AuditReader::open(&settings.store).await?;
    let facts = reader.report_facts(from, to).await?;
    let mut axes = args.by.clone();
    axes.dedup();
    let figured = figure(&facts, &axes);
    if let Some(file) = &args.html {
        let page = html::page(&facts, &figured, period.from, period.to, &period.months());
        std::fs::write(file, page).with_context(|| format!("cannot write {}", file.display()))?;
        return Ok(());
    }
    let text = if args.csv {
        csv(&figured)
    } else if args.json {
        json(&figured, period)
    } else {
        table(&figured)
    };
    print!("{text}");
    Ok(())
}

/// The columns of every format, in order, as the partners read them.
const RECEIVED: &str = "alertes reçues";
const DELIVERED: &str = "distribuées";
const BOUNCED: &str = "rebonds";
const DEAD: &str = "lettres mortes";
const ACKNOWLEDGED: &str = "accusées";
const MEDIAN: &str = "délai médian";
const P90: &str = "délai p90";
const ESCALATED: &str = "escaladées";
const UNACKNOWLEDGED: &str = "sans accusé";

/// The cells of one line, after its axes' values: counts as they are,
/// times as `time` writes them, the dead letters by reason if `reasons`.
fn cells(figures: &Figures, reasons: bool, time: fn(Option<i64>) -> String) -> Vec<String> {
    let mut cells = vec![
        figures.received.to_string(),
        figures.delivered.to_string(),
        figures.bounced.to_string(),
        figures.dead_lettered.to_string(),
    ];
    if reasons {
        cells.extend(Reason::ALL.iter().map(|reason| {
            figures
                .dead_by_reason
                .get(reason.as_str())
                .copied()
                .unwrap_or(0)
                .to_string()
        }));
    }
    cells.extend([
        figures.acknowledged.to_string(),
        time(figures.median_seconds),
        time(figures.p90_seconds),
        figures.escalated.to_string(),
        figures.unacknowledged.to_string(),
    ]);
    cells.extend(FollowUp::ALL.iter().map(|choice| {
        figures
            .outcomes
            .get(choice.code())
            .copied()
            .unwrap_or(0)
            .to_string()
    }));
    cells
}

/// The header's cells after the axes', as [`cells`] orders them.
fn header(reasons: bool, time_unit: &str) -> Vec<String> {
    let mut header: Vec<String> = [RECEIVED, DELIVERED, BOUNCED, DEAD]
        .map(str::to_owned)
        .to_vec();
    if reasons {
        header.extend(
            Reason::ALL
                .iter()
                .map(|reason| format!("{DEAD} : {reason}")),
        );
    }
    header.push(ACKNOWLEDGED.to_owned());
    header.push(format!("{MEDIAN}{time_unit}"));
    header.push(format!("{P90}{time_unit}"));
    header.push(ESCALATED.to_owned());
    header.push(UNACKNOWLEDGED.to_owned());
    header.extend(
        FollowUp::ALL
            .iter()
            .map(|choice| format!("suite : {}", choice.code())),
    );
    header
}

/// Every row of a format: the header, each line, then the total.
fn rows(
    figured: &Figured,
    reasons: bool,
    time_unit: &str,
    time: fn(Option<i64>) -> String,
) -> Vec<Vec<String>> {
    let mut rows = Vec::with_capacity(figured.lines.len() + 2);
    let mut head: Vec<String> = figured
        .axes
        .iter()
        .map(|axis| axis.label().to_owned())
        .collect();
    head.extend(header(reasons, time_unit));
    rows.push(head);
    for line in &figured.lines {
        let mut row = line.key.clone();
        row.extend(cells(&line.figures, reasons, time));
        rows.push(row);
    }
    let mut total = vec![String::new(); figured.axes.len()];
    if let Some(first) = total.first_mut() {
        "total".clone_into(first);
    }
    total.extend(cells(&figured.total, reasons, time));
    rows.push(total);
    rows
}

/// The table for people: columns aligned, times in words.
fn table(figured: &Figured) -> String {
    let rows = rows(figured, false, "", duration);
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let axes = figured.axes.len();
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[column] - cell.chars().count());
            // Names to the left, figures to the right.
            if column < axes {
                let _ = write!(line, "{}{pad}", super::output::printable(cell));
            } else {
                let _ = write!(line, "{pad}{cell}");
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// CSV for a spreadsheet: a BOM so that LibreOffice and Excel read it as
/// UTF-8, `;` between cells (a French spreadsheet's), times in seconds.
fn csv(figured: &Figured) -> String {
    let mut text = String::from('\u{feff}');
    for row in rows(figured, true, " (s)", seconds) {
        let cells: Vec<String> = row.iter().map(|cell| csv_cell(cell)).collect();
        text.push_str(&cells.join(";"));
        text.push_str("\r\n");
    }
    text
}

/// A cell quoted when it holds a separator, a quote or a line break.
fn csv_cell(cell: &str) -> String {
    if cell.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

/// One JSON document: the period, the axes, each line and the total.
fn json(figured: &Figured, period: Period) -> String {
    let line = |key: &[String], figures: &Figures| {
        let mut object = serde_json::Map::new();
        for (axis, value) in figured.axes.iter().zip(key) {
            object.insert(axis.name().into(), value.as_str().into());
        }
        let mut fields = json_figures(figures);
        object.append(&mut fields);
        serde_json::Value::Object(object)
    };
    let document = serde_json::json!({
        "from": period.from.format(DATE).unwrap_or_default(),
        "to": period.to.format(DATE).unwrap_or_default(),
        "by": figured.axes.iter().map(|axis| axis.name()).collect::<Vec<_>>(),
        "lines": figured
            .lines
            .iter()
            .map(|l| line(&l.key, &l.figures))
            .collect::<Vec<_>>(),
        "total": serde_json::Value::Object(json_figures(&figured.total)),
    });
    format!("{document}\n")
}

fn json_figures(figures: &Figures) -> serde_json::Map<String, serde_json::Value> {
    let mut dead = serde_json::Map::new();
    dead.insert("total".into(), figures.dead_lettered.into());
    for reason in Reason::ALL {
        let count = figures.dead_by_reason.get(reason.as_str()).copied();
        dead.insert(reason.as_str().into(), count.unwrap_or(0).into());
    }
    let mut outcomes = serde_json::Map::new();
    for choice in FollowUp::ALL {
        let count = figures.outcomes.get(choice.code()).copied();
        outcomes.insert(choice.code().into(), count.unwrap_or(0).into());
    }
    let serde_json::Value::Object(object) = serde_json::json!({
        "received": figures.received,
        "delivered": figures.delivered,
        "bounced": figures.bounced,
        "dead_lettered": dead,
        "acknowledged": {
            "count": figures.acknowledged,
            "median_seconds": figures.median_seconds,
            "p90_seconds": figures.p90_seconds,
        },
        "escalated": figures.escalated,
        "unacknowledged": figures.unacknowledged,
        "outcomes": outcomes,
    }) else {
        return serde_json::Map::new();
    };
    object
}

/// Seconds, for a spreadsheet; empty when nothing was timed.
fn seconds(value: Option<i64>) -> String {
    value.map(|s| s.to_string()).unwrap_or_default()
}

/// A time to acknowledgement in words: `45 s`, `12 min 05 s`, `3 h 20 min`,
/// `2 j 4 h`; `-` when nothing was timed.
pub(crate) fn duration(value: Option<i64>) -> String {
    let Some(seconds) = value else {
        return "-".to_owned();
    };
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    if seconds < 60 {
        format!("{seconds} s")
    } else if seconds < 3600 {
        format!("{minutes} min {:02} s", seconds % 60)
    } else if seconds < 86_400 {
        format!("{hours} h {:02} min", minutes % 60)
    } else {
        format!("{days} j {} h", hours % 24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_default_period_is_the_last_full_calendar_year() {
        let args = ReportArgs {
            from: None,
            to: None,
            by: vec![Axis::Association],
            csv: false,
            json: false,
            html: None,
        };
        let period = Period::of(&args, date!(2027 - 01 - 15)).unwrap();
        assert_eq!(
            (period.from, period.to),
            (date!(2026 - 01 - 01), date!(2026 - 12 - 31))
        );
        let (from, to) = period.instants().unwrap();
        assert_eq!(from.to_string(), "2026-01-01 0:00:00.0 +01:00:00");
        assert_eq!(to.to_string(), "2027-01-01 0:00:00.0 +01:00:00");
        assert_eq!(period.months().len(), 12);
    }

    #[test]
    fn a_summer_day_starts_at_midnight_summer_time() {
        assert_eq!(
            paris_midnight(date!(2026 - 07 - 14)).to_string(),
            "2026-07-14 0:00:00.0 +02:00:00"
        );
    }

    #[test]
    fn times_are_written_in_words_for_people() {
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(45)), "45 s");
        assert_eq!(duration(Some(725)), "12 min 05 s");
        assert_eq!(duration(Some(12_000)), "3 h 20 min");
        assert_eq!(duration(Some(187_200)), "2 j 4 h");
    }
}
