//! The convention's yearly report: alerts of two associations go through
//! relais (delivered, acknowledged from their links, one followed up, one
//! dead-lettered), then `relais report` gives each association's figures,
//! exactly, as a table, as CSV for a French spreadsheet (BOM, `;`,
//! accents intact) and as JSON; its HTML page opens from a file in
//! headless Chromium at a phone's width, fetches nothing, and shows the
//! figures.

use relais_testkit as support;

use std::time::Duration;

use relais::availability::paris_date;
use relais::store::ReportFact;
use support::browser::Browser;
use support::{ACK_SECRET, DispatchUser, REGISTRY, WAIT, World, alert, link_in, text};
use time::OffsetDateTime;

/// POSTs `body` (a form) to the pages on `port`; the status.
async fn post_form(port: u16, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// The path of the acknowledgement link of the email to `to`.
fn ack_path(mails: &[support::smtp::Mail], to: &str, port: u16) -> String {
    let mail = mails
        .iter()
        .find(|mail| mail.to == [to])
        .unwrap_or_else(|| panic!("no email to {to}"));
    link_in(&mail.text(), "/ack/").replace(&format!("http://127.0.0.1:{port}"), "")
}

/// Seconds from reception to the first acknowledgement of each
/// acknowledged alert of `publisher`, as the store's facts say.
fn waits(facts: &[ReportFact], publisher: &str) -> Vec<i64> {
    facts
        .iter()
        .filter(|fact| fact.publisher == publisher)
        .filter_map(|fact| Some((fact.acknowledged_at? - fact.received_at).whole_seconds()))
        .collect()
}

/// A time to acknowledgement as the table writes it (the test's are
/// under a minute).
fn words(seconds: i64) -> String {
    assert!(seconds < 60, "{seconds} s");
    format!("{seconds} s")
}

/// A table's lines, each cut into its cells (two spaces or more apart).
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn the_report_gives_each_association_s_figures_as_a_table_csv_json_and_a_phone_page() {
    // Arrange: two associations; relais serving its pages.
    let sos_a = DispatchUser::create("report-a");
    let sos_b = DispatchUser::create("report-b");
    let (world, port) = World::with_ack(REGISTRY, ACK_SECRET, &[]).await;
    let app = world.spawn();
    sos_a
        .publish(&world, &alert("RPT-A1", "orientation_sociale", "75115"))
        .await;
    sos_a
        .publish(&world, &alert("RPT-A2", "orientation_sociale", "75115"))
        .await;
    // Two référents of the CCAS of Paris 13e.
    sos_b
        .publish(&world, &alert("RPT-B1", "orientation_sociale", "75113"))
        .await;
    // Nobody covers Marseille: dead-lettered before any network.
    sos_b
        .publish(&world, &alert("RPT-B2", "orientation_sociale", "13055"))
        .await;
    let mails = world.smtp.wait_for(4, WAIT).await;
    assert_eq!(mails.len(), 4);
    assert_eq!(world.wait_for_depth(&world.dead(), 1, WAIT).await, 1);
    // RPT-A1 acknowledged; RPT-B1 followed up (which acknowledges it).
    let first_to_paris = mails
        .iter()
        .find(|mail| mail.to == ["social@paris.test"] && mail.text().contains("RPT-A1"))
        .unwrap();
    let a1 =
        link_in(&first_to_paris.text(), "/ack/").replace(&format!("http://127.0.0.1:{port}"), "");
    assert_eq!(post_form(port, &a1, "").await, 200);
    let b1 = ack_path(&mails, "camille.martin@ccas-paris13.test", port);
    assert_eq!(post_form(port, &b1, "suite=contact_etabli").await, 200);
    // The facts are written in the background: wait for the last ones.
    let today = paris_date(OffsetDateTime::now_utc());
    let (from, until) = (today.previous_day().unwrap(), today.next_day().unwrap());
    let reader = world.audit().await;
    let mut facts = Vec::new();
    for _ in 0..100 {
        facts = reader
            .report_facts(
                OffsetDateTime::now_utc() - time::Duration::days(2),
                OffsetDateTime::now_utc() + time::Duration::days(2),
            )
            .await
            .unwrap();
        let acknowledged = facts.iter().filter(|f| f.acknowledged_at.is_some()).count();
        let outcomes = facts.iter().filter(|f| f.outcome.is_some()).count();
        let dead = facts.iter().filter(|f| f.dead_reason.is_some()).count();
        if facts.len() == 4 && acknowledged == 2 && outcomes == 1 && dead == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(reader);
    app.stop().await;
    let (from_text, until_text) = (from.to_string(), until.to_string());
    let period = ["--from", &from_text, "--to", &until_text];

    // Act
    let table = world.cli(&[&["report"][..], &period, &["--by", "association"]].concat());
    let csv = world.cli(&[&["report"][..], &period, &["--csv"]].concat());
    let json = world.cli(&[&["report"][..], &period, &["--json"]].concat());
    let page = world.dir.path().join("rapport.html");
    let html = world.cli(
        &[
            &["report"][..],
            &period,
            &["--html", page.to_str().unwrap()],
        ]
        .concat(),
    );

    // Assert: exact figures, in each format.
    for output in [&table, &csv, &json, &html] {
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(text(&output.stderr), "");
    }
    let (a, b) = (sos_a.name.as_str(), sos_b.name.as_str());
    let (wait_a, wait_b) = (waits(&facts, a), waits(&facts, b));
    assert_eq!((wait_a.len(), wait_b.len()), (1, 1), "{facts:?}");
    let (wait_a, wait_b) = (wait_a[0], wait_b[0]);
    let (fast, slow) = (wait_a.min(wait_b), wait_a.max(wait_b));

    let table = text(&table.stdout);
    let row = |cells: &[&str]| cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        cells(&table),
        [
            row(&[
                "association",
                "alertes reçues",
                "distribuées",
                "rebonds",
                "lettres mortes",
                "accusées",
                "délai médian",
                "délai p90",
                "escaladées",
                "sans accusé",
                "suite : contact_etabli",
                "suite : oriente",
                "suite : injoignable",
                "suite : refus",
                "suite : hors_perimetre",
            ]),
            row(&[
                a,
                "2",
                "2",
                "0",
                "0",
                "1",
                &words(wait_a),
                &words(wait_a),
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                b,
                "2",
                "1",
                "0",
                "1",
                "1",
                &words(wait_b),
                &words(wait_b),
                "0",
                "0",
                "1",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                "total",
                "4",
                "3",
                "0",
                "1",
                "2",
                &words(fast),
                &words(slow),
                "0",
                "0",
                "1",
                "0",
                "0",
                "0",
                "0"
            ]),
        ],
        "{table}"
    );
    // Aligned: the figures end in one column.
    let widths: Vec<usize> = table.lines().map(|line| line.chars().count()).collect();
    assert!(widths.iter().all(|w| *w == widths[0]), "{table}");

    let csv = csv.stdout;
    let header = "\u{feff}association;alertes reçues;distribuées;rebonds;lettres mortes;\
        lettres mortes : invalid;lettres mortes : unroutable;lettres mortes : forbidden;\
        lettres mortes : conflict;lettres mortes : rejected;lettres mortes : exhausted;\
        lettres mortes : delivery_limit;accusées;délai médian (s);délai p90 (s);escaladées;\
        sans accusé;suite : contact_etabli;suite : oriente;suite : injoignable;suite : refus;\
        suite : hors_perimetre\r\n";
    assert_eq!(&csv[..3], b"\xef\xbb\xbf", "the BOM");
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        format!(
            "{header}\
             {a};2;2;0;0;0;0;0;0;0;0;0;1;{wait_a};{wait_a};0;0;0;0;0;0;0\r\n\
             {b};2;1;0;1;0;1;0;0;0;0;0;1;{wait_b};{wait_b};0;0;1;0;0;0;0\r\n\
             total;4;3;0;1;0;1;0;0;0;0;0;2;{fast};{slow};0;0;1;0;0;0;0\r\n"
        )
    );
    assert!(header.contains("reçues;distribuées") && header.contains("médian"));

    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let figures = |received: u64,
                   delivered: u64,
                   dead: u64,
                   unroutable: u64,
                   acknowledged: u64,
                   (median, p90): (i64, i64),
                   contact: u64| {
        serde_json::json!({
            "received": received,
            "delivered": delivered,
            "bounced": 0,
            "dead_lettered": {
                "total": dead, "invalid": 0, "unroutable": unroutable, "forbidden": 0,
                "conflict": 0, "rejected": 0, "exhausted": 0, "delivery_limit": 0,
            },
            "acknowledged": {
                "count": acknowledged, "median_seconds": median, "p90_seconds": p90,
            },
            "escalated": 0,
            "unacknowledged": 0,
            "outcomes": {
                "contact_etabli": contact, "oriente": 0, "injoignable": 0, "refus": 0,
                "hors_perimetre": 0,
            },
        })
    };
    let line = |association: &str, figures: serde_json::Value| {
        let mut line = figures;
        line["association"] = association.into();
        line
    };
    assert_eq!(
        json,
        serde_json::json!({
            "from": from.to_string(),
            "to": until.to_string(),
            "by": ["association"],
            "lines": [
                line(a, figures(2, 2, 0, 0, 1, (wait_a, wait_a), 0)),
                line(b, figures(2, 1, 1, 1, 1, (wait_b, wait_b), 1)),
            ],
            "total": figures(4, 3, 1, 1, 2, (fast, slow), 1),
        })
    );

    // The page: self-contained, readable on a phone, with the figures.
    let source = std::fs::read_to_string(&page).unwrap();
    for outside in ["http://", "https://", "<script", "src=", "url(", "@import"] {
        assert!(!source.contains(outside), "{outside} in the page");
    }
    assert!(source.contains("<meta name=\"viewport\""));
    let browser = Browser::start().await;
    browser.resize(360, 800).await;
    browser.open(&format!("file://{}", page.display())).await;
    let title = browser.evaluate("return document.title").await;
    let shown = browser.text().await;
    let widths = browser
        .evaluate("return [window.innerWidth, document.documentElement.scrollWidth]")
        .await;
    let screenshot =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-page-360px.png");
    browser.screenshot(&screenshot).await;
    println!("the report's page at 360 px: {}", screenshot.display());
    drop(browser);
    let french = |date: time::Date| {
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
        format!(
            "{} {} {}",
            date.day(),
            MONTHS[usize::from(u8::from(date.month())) - 1],
            date.year()
        )
    };
    assert_eq!(
        title.as_str().unwrap(),
        format!(
            "Rapport de la convention : alertes du {} au {}",
            french(from),
            french(until)
        )
    );
    for figure in [
        "Alertes reçues par mois et par association",
        "Délai d'accusé de réception par réseau",
        "Contact établi avec la personne",
        a,
        b,
    ] {
        assert!(shown.contains(figure), "{figure} in {shown}");
    }
    assert!(
        shown.contains("total\t4\t3\t0\t1\t2\t"),
        "the total line in {shown}"
    );
    assert!(
        widths[1].as_u64().unwrap() <= widths[0].as_u64().unwrap(),
        "nothing to scroll sideways at 360 px: {widths}"
    );
    world.cleanup().await;
}
