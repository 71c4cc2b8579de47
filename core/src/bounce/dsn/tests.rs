use super::fields::strip_comments;
use super::*;

fn sample(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests-data/bounces")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn report(raw: &[u8]) -> Report {
    match Bounce::parse(raw) {
        Ok(Bounce::Report(report)) => report,
        other => panic!("{other:?}"),
    }
}

fn rfc822(address: &str) -> Recipient {
    Recipient {
        address_type: "rfc822".into(),
        address: address.into(),
    }
}

/// A minimal report around a delivery-status part, lines ending in CRLF
/// as on the wire.
fn around(delivery_status: &str) -> Vec<u8> {
    let message = format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n\
         To: bounces+r3kq7wzm5tdxa2ybcn6gfvhj4e@relais.example.org\n\
         Subject: Undelivered Mail Returned to Sender\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\
         \tboundary=\"B0UND\"\n\
         \n\
         --B0UND\n\
         Content-Type: text/plain\n\
         \n\
         The mail system\n\
         \n\
         --B0UND\n\
         Content-Type: message/delivery-status\n\
         \n\
         {delivery_status}\n\
         --B0UND--\n"
    );
    message.replace('\n', "\r\n").into_bytes()
}

#[test]
fn a_postfix_bounce_reads_as_a_permanent_failure_of_its_recipient() {
    let raw = sample("postfix-user-unknown.eml");

    let report = report(&raw);

    assert_eq!(
        report,
        Report {
            reporting_mta: Some("mail.relais.example.org".into()),
            recipients: vec![RecipientReport {
                final_recipient: rfc822("referent.absent@cd-exemple.fr"),
                original_recipient: Some(rfc822("referent.absent@cd-exemple.fr")),
                action: Action::Failed,
                status: Status::parse("5.1.1").unwrap(),
                remote_mta: Some("mx.cd-exemple.fr".into()),
                diagnostic: Some(
                    "550 5.1.1 <referent.absent@cd-exemple.fr>: Recipient address rejected: \
                     User unknown in local recipient table"
                        .into()
                ),
            }],
        }
    );
    let status = report.recipients[0].status;
    assert!(status.is_permanent() && !status.is_transient() && !status.is_success());
    assert_eq!(
        (status.class(), status.subject(), status.detail()),
        (Class::Permanent, 1, 1)
    );
}

#[test]
fn an_exim_bounce_reads_with_its_first_remote_mta_and_its_diagnostic_code() {
    let raw = sample("exim-failed.eml");

    let report = report(&raw);

    assert_eq!(
        report,
        Report {
            reporting_mta: Some("mail.relais.example.org".into()),
            recipients: vec![RecipientReport {
                final_recipient: rfc822("referent.parti@mairie-exemple.fr"),
                original_recipient: None,
                action: Action::Failed,
                status: Status::parse("5.0.0").unwrap(),
                remote_mta: Some("mx.mairie-exemple.fr".into()),
                diagnostic: Some(
                    "550 5.1.1 <referent.parti@mairie-exemple.fr>: mailbox unavailable".into()
                ),
            }],
        }
    );
}

#[test]
fn a_delay_notice_reads_as_delayed_with_a_transient_status() {
    let raw = sample("postfix-delayed.eml");

    let report = report(&raw);

    let [recipient] = report.recipients.as_slice() else {
        panic!("{report:?}");
    };
    assert_eq!(recipient.action, Action::Delayed);
    assert_eq!(recipient.status.to_string(), "4.4.7");
    assert!(recipient.status.is_transient());
    assert_eq!(
        recipient.final_recipient.mail_address(),
        Some("referent.lent@ccas-exemple.fr")
    );
    assert_eq!(
        recipient.diagnostic.as_deref(),
        Some("connect to mx.ccas-exemple.fr[192.0.2.77]:25: Connection timed out")
    );
    assert_eq!(recipient.remote_mta, None);
}

#[test]
fn a_report_on_two_recipients_reads_as_two_recipient_reports_in_order() {
    let raw = sample("postfix-two-recipients.eml");

    let report = report(&raw);

    let read: Vec<_> = report
        .recipients
        .iter()
        .map(|recipient| {
            (
                recipient.final_recipient.mail_address().unwrap(),
                recipient.action,
                recipient.status.to_string(),
            )
        })
        .collect();
    assert_eq!(
        read,
        [
            ("accueil@cd-exemple.fr", Action::Failed, "5.1.1".to_owned()),
            (
                "astreinte@cd-exemple.fr",
                Action::Failed,
                "5.2.2".to_owned()
            ),
        ]
    );
}

#[test]
fn folded_lines_uppercase_names_comments_and_angle_brackets_are_read() {
    let raw = around(
        "REPORTING-MTA: DNS;\n\
         \tmx.example.net\n\
         \n\
         FINAL-RECIPIENT: RFC822; <Referent@Example.NET> (the address tried)\n\
         ACTION: FAILED (permanent)\n\
         STATUS: 5.2.2 (mailbox full)\n\
         DIAGNOSTIC-CODE: SMTP; 552-5.2.2 The email account that you tried to reach is\n\
         \x20   over quota (see the help page)\n",
    );

    let report = report(&raw);

    assert_eq!(report.reporting_mta.as_deref(), Some("mx.example.net"));
    assert_eq!(
        report.recipients,
        [RecipientReport {
            final_recipient: rfc822("Referent@Example.NET"),
            original_recipient: None,
            action: Action::Failed,
            status: Status::parse("5.2.2").unwrap(),
            remote_mta: None,
            diagnostic: Some(
                "552-5.2.2 The email account that you tried to reach is over quota (see the \
                 help page)"
                    .into()
            ),
        }]
    );
}

#[test]
fn a_report_without_per_message_fields_still_reads_its_recipient() {
    let raw = around("Final-Recipient: rfc822; a@example.net\nAction: failed\nStatus: 5.1.1\n");

    let report = report(&raw);

    assert_eq!(report.reporting_mta, None);
    assert_eq!(report.recipients.len(), 1);
}

#[test]
fn a_plain_text_bounce_is_unstructured_with_the_one_status_its_text_gives() {
    let raw = sample("qmail-plain.eml");

    let bounce = Bounce::parse(&raw);

    assert_eq!(
        bounce,
        Ok(Bounce::Unstructured {
            status: Status::parse("5.1.1")
        })
    );
}

#[test]
fn a_plain_text_bounce_with_two_different_statuses_or_none_has_no_status() {
    let two = "From: MAILER-DAEMON@mx.example.net\nSubject: failure notice\n\n\
               a@example.net: 550 5.1.1 unknown\nb@example.net: 452 4.2.2 over quota\n";
    let none = "From: MAILER-DAEMON@mx.example.net\nSubject: failure notice\n\n\
                Your message to a@example.net at 192.0.2.7 could not be delivered (v2.4.1).\n";
    let same_twice = "From: MAILER-DAEMON@mx.example.net\n\n550-5.1.1 no\n550 5.1.1 such user.\n";

    assert_eq!(
        Bounce::parse(two.as_bytes()),
        Ok(Bounce::Unstructured { status: None })
    );
    assert_eq!(
        Bounce::parse(none.as_bytes()),
        Ok(Bounce::Unstructured { status: None })
    );
    assert_eq!(
        Bounce::parse(same_twice.as_bytes()),
        Ok(Bounce::Unstructured {
            status: Status::parse("5.1.1")
        })
    );
}

#[test]
fn a_message_over_a_megabyte_is_refused_before_it_is_read() {
    let mut raw = sample("postfix-user-unknown.eml");
    raw.resize(10 * 1024 * 1024, b'x');

    let bounce = Bounce::parse(&raw);

    assert_eq!(
        bounce,
        Err(DsnError::TooLarge {
            size: 10 * 1024 * 1024,
            max: 1024 * 1024
        })
    );
    assert_eq!(
        bounce.unwrap_err().to_string(),
        "the message is 10485760 bytes, over the limit of 1048576 bytes for a bounce"
    );
}

#[test]
fn garbage_is_refused_as_not_a_mail_message() {
    let inputs: [&[u8]; 5] = [
        b"",
        b"\0\xff\xfe garbage \x01\x02",
        b"no header at all, just words",
        b"Subject: a header but no From\n\nbody",
        b"\n\nFrom: after the blank line\n",
    ];

    for input in inputs {
        assert_eq!(
            Bounce::parse(input),
            Err(DsnError::NotAMessage),
            "{input:?}"
        );
    }
}

#[test]
fn a_multipart_without_a_usable_boundary_is_malformed_mime() {
    let no_boundary = "From: MAILER-DAEMON@mx.example.net\nContent-Type: multipart/report; \
                       report-type=delivery-status\n\nbody\n";
    let never_used = "From: MAILER-DAEMON@mx.example.net\nContent-Type: multipart/report; \
                      report-type=delivery-status; boundary=\"XYZ\"\n\nbody\n";

    assert_eq!(
        Bounce::parse(no_boundary.as_bytes()),
        Err(DsnError::MalformedMime(
            "a multipart message without a boundary"
        ))
    );
    assert_eq!(
        Bounce::parse(never_used.as_bytes()),
        Err(DsnError::MalformedMime(
            "the multipart boundary never appears"
        ))
    );
}

#[test]
fn a_delivery_report_without_its_delivery_status_part_is_malformed_mime() {
    let raw = "From: MAILER-DAEMON@mx.example.net\n\
               Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\
               \n\
               --B\n\
               Content-Type: text/plain\n\
               \n\
               550 5.1.1 unknown\n\
               --B--\n";

    assert_eq!(
        Bounce::parse(raw.as_bytes()),
        Err(DsnError::MalformedMime(
            "a delivery report without its message/delivery-status part"
        ))
    );
}

#[test]
fn an_unreadable_delivery_status_part_lists_every_problem_with_its_line() {
    let raw = around(
        "\x20continued with nothing before\n\
         Reporting-MTA: dns; mx.example.net\n\
         \n\
         Final-Recipient: x.personne@example.net\n\
         Action: bounced\n\
         Status: 550\n\
         \n\
         Action: failed\n\
         Action: failed\n\
         this line is no field\n\
         Bad Name: value\n",
    );

    let error = Bounce::parse(&raw).unwrap_err();

    assert_eq!(
        error.to_string(),
        "unreadable delivery-status part: \
         line 1: a continued line with no field before it; \
         line 10: not a `Name: value` field; \
         line 11: a field name must be printable ASCII without spaces"
    );
    let raw = around(
        "Reporting-MTA: dns; mx.example.net\n\
         \n\
         Final-Recipient: x.personne@example.net\n\
         Action: bounced\n\
         Status: 550\n\
         \n\
         Action: failed\n\
         Action: failed\n",
    );

    let error = Bounce::parse(&raw).unwrap_err();

    assert_eq!(
        error.to_string(),
        "unreadable delivery-status part: \
         line 3: Final-Recipient must be `type; address` (such as `rfc822; someone@example.org`); \
         line 4: Action must be failed, delayed, delivered, relayed or expanded; \
         line 5: Status must be an enhanced status code, class.subject.detail (RFC 3463); \
         line 7: the recipient block has no Final-Recipient field; \
         line 7: the recipient block has more than one Action field; \
         line 7: the recipient block has no Status field"
    );
    assert!(!error.to_string().contains("personne"));
}

#[test]
fn a_delivery_status_part_without_a_recipient_block_is_refused() {
    let per_message_only = around("Reporting-MTA: dns; mx.example.net\nArrival-Date: today\n");
    let empty = around("");

    assert_eq!(Bounce::parse(&per_message_only), Err(DsnError::NoRecipient));
    assert_eq!(Bounce::parse(&empty), Err(DsnError::NoRecipient));
}

#[test]
fn an_enhanced_status_code_has_a_class_of_2_4_or_5_and_up_to_three_digits_twice() {
    for valid in ["2.0.0", "4.4.7", "5.1.1", "5.999.999", "5.01.002"] {
        assert!(Status::parse(valid).is_some(), "{valid}");
    }
    for invalid in [
        "", "5", "5.1", "3.1.1", "55.1.1", "5.1.1.1", "5.1000.1", "5..1", "5.1.", " 5.1.1",
        "5.a.1", "5.+1.1",
    ] {
        assert_eq!(Status::parse(invalid), None, "{invalid}");
    }
}

#[test]
fn a_comment_is_removed_but_not_inside_a_quoted_string() {
    assert_eq!(strip_comments("5.1.1 (user (really) unknown)"), "5.1.1 ");
    assert_eq!(
        strip_comments("\"a(b)\"@example.net"),
        "\"a(b)\"@example.net"
    );
    assert_eq!(strip_comments("failed (a \\) b) x"), "failed  x");
}

#[test]
fn every_sample_is_read_without_a_panic_when_cut_at_any_length() {
    for name in [
        "postfix-user-unknown.eml",
        "exim-failed.eml",
        "postfix-delayed.eml",
        "postfix-two-recipients.eml",
        "qmail-plain.eml",
    ] {
        let raw = sample(name);
        for end in 0..raw.len() {
            let _ = Bounce::parse(&raw[..end]);
        }
    }
}

#[test]
fn a_report_or_a_status_inside_the_returned_message_is_not_read_as_the_bounce() {
    let raw = "From: postmaster@mx.example.net\n\
               Subject: Returned mail\n\
               Content-Type: multipart/mixed; boundary=\"OUTER\"\n\
               \n\
               --OUTER\n\
               Content-Type: text/plain\n\
               \n\
               Your message could not be delivered: 550 5.1.1 no such user.\n\
               --OUTER\n\
               Content-Type: message/rfc822\n\
               \n\
               From: someone@example.org\n\
               Content-Type: multipart/report; report-type=delivery-status; boundary=\"INNER\"\n\
               \n\
               --INNER\n\
               Content-Type: text/plain\n\
               \n\
               452 4.2.2 over quota\n\
               --INNER\n\
               Content-Type: message/delivery-status\n\
               \n\
               Reporting-MTA: dns; elsewhere.example.org\n\
               \n\
               Final-Recipient: rfc822; other@example.org\n\
               Action: delayed\n\
               Status: 4.2.2\n\
               --INNER--\n\
               --OUTER--\n";

    let bounce = Bounce::parse(raw.as_bytes());

    assert_eq!(
        bounce,
        Ok(Bounce::Unstructured {
            status: Status::parse("5.1.1")
        })
    );
}

#[test]
fn a_boundary_that_never_starts_a_line_is_malformed_mime() {
    let raw = "From: x@example.net\nContent-Type: multipart/report; boundary=\"B\"\n\n \
               --B is not at the start of a line\n";

    let bounce = Bounce::parse(raw.as_bytes());

    assert_eq!(
        bounce,
        Err(DsnError::MalformedMime(
            "the multipart boundary never appears"
        ))
    );
}

#[test]
fn a_boundary_too_long_to_search_quickly_is_refused_before_parsing() {
    // The MIME parser compares a boundary whole at each dash: 200,000
    // characters over a megabyte of dashes would take seconds.
    let long = "-".repeat(200_000);
    let dashes = "-".repeat(700_000);
    let inputs = [
        format!("From: x@example.net\nContent-Type: multipart/report; boundary=\"{long}x\"\n\n{dashes}\n"),
        format!("From: x@example.net\nContent-Type: multipart/mixed; BOUNDARY={long}x\n\n{dashes}\n"),
        format!(
            "From: x@example.net\nContent-Type: multipart/mixed; boundary=\"A\"\n\n--A\n\
             Content-Type: multipart/alternative; boundary=\"{}\"\n\n{dashes}\n--A--\n",
            "-".repeat(301)
        ),
        "From: x@example.net\nContent-Type: multipart/mixed; boundary*0=\"a\"; boundary*1=\"b\"\n\n--ab\n"
            .to_owned(),
    ];
    let started = std::time::Instant::now();

    let read: Vec<_> = inputs
        .iter()
        .map(|raw| Bounce::parse(raw.as_bytes()))
        .collect();

    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    for bounce in read {
        assert_eq!(
            bounce,
            Err(DsnError::MalformedMime(
                "a multipart boundary over 300 characters, or in RFC 2231 pieces"
            ))
        );
    }
}
