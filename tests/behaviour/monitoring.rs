//! The monitoring kit watches metrics relais really exposes: every metric
//! name in the alerting rules and the dashboard is one of relais's.

use std::collections::BTreeSet;

use relais::telemetry::metrics::{
    ActionLabel, ClassLabel, DelayLabel, Metrics, NetworkLabel, QueueLabel, ReasonLabel,
    ReferentLabel, StepLabel,
};

/// The metric families relais exposes, from `# TYPE` lines (labelled
/// families show only once they have a sample, so each is given one).
fn exposed() -> BTreeSet<String> {
    let metrics = Metrics::new();
    let network = NetworkLabel {
        network: "ccas".into(),
    };
    metrics.alerts_delivered.get_or_create(&network).inc();
    metrics.referent_floods.get_or_create(&network).inc();
    metrics.alerts_unacknowledged.get_or_create(&network).inc();
    metrics
        .referent_bounces
        .get_or_create(&ReferentLabel {
            referent: "camille".into(),
            network: "ccas".into(),
        })
        .inc();
    metrics
        .acknowledgement_time
        .get_or_create(&network)
        .observe(60.0);
    metrics
        .escalations
        .get_or_create(&StepLabel { step: "deputies" })
        .inc();
    metrics
        .alerts_retried
        .get_or_create(&DelayLabel {
            delay: "30s".into(),
        })
        .inc();
    metrics
        .alerts_dead_lettered
        .get_or_create(&ReasonLabel {
            reason: "invalid".into(),
        })
        .inc();
    metrics
        .emails_failed
        .get_or_create(&ClassLabel {
            class: "transient".into(),
        })
        .inc();
    let queue = QueueLabel {
        queue: "relais.alerts".into(),
    };
    metrics.queue_messages.get_or_create(&queue).set(0);
    metrics.queue_consumers.get_or_create(&queue).set(0);
    metrics
        .settle_failures
        .get_or_create(&ActionLabel {
            action: "ack".into(),
        })
        .inc();
    metrics
        .encode()
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every `relais_…` name in `text`, as its family name.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("relais_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_total", "_bucket", "_sum", "_count", "_info"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.insert(family.to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_alerting_rules_use_only_metrics_relais_exposes() {
    let rules = include_str!("../../monitoring/prometheus-rules.yml");
    let used = referenced(rules);
    assert!(used.len() >= 6, "{used:?}");
    let exposed = exposed();
    let missing: Vec<_> = used.difference(&exposed).collect();
    assert!(missing.is_empty(), "rules use unknown metrics: {missing:?}");
    for alert in [
        "RelaisDown",
        "RelaisNotConsuming",
        "RelaisDeadLetters",
        "RelaisRetryQueuesGrowing",
        "RelaisStalled",
        "RelaisSlow",
        "RelaisReferentFlooded",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}\n")),
            "missing alert {alert}"
        );
    }
}

#[test]
fn the_dashboard_is_valid_json_and_uses_only_metrics_relais_exposes() {
    let text = include_str!("../../monitoring/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
    assert_eq!(dashboard["uid"], "relais");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let used = referenced(text);
    let exposed = exposed();
    let missing: Vec<_> = used.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "dashboard uses unknown metrics: {missing:?}"
    );
    // Every metric relais exposes is on the dashboard.
    let unseen: Vec<_> = exposed
        .iter()
        .filter(|name| !used.contains(*name))
        .collect();
    assert!(
        unseen.is_empty(),
        "metrics missing from the dashboard: {unseen:?}"
    );
}
