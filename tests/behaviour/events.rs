//! Each alert's fate, told back to the dispatch software on
//! `events.exchange`: the real binary's events, read from a queue the test
//! binds as a dispatch software would, checked against
//! `schema/event.v2.json` and for exactly what they say.

use relais_testkit as support;

use serde_json::{Value, json};
use support::{REGISTRY, WAIT, World, alert};

#[tokio::test]
async fn the_dispatch_software_reads_each_delivery_and_each_dead_letter_as_an_event() {
    // Arrange: a queue of the dispatch software's, bound to every status.
    let world = World::new(REGISTRY).await;
    let queue = world.bind_events("#").await;
    let app = world.spawn();

    // Act: an alert for two caisses, and a message that is not an alert.
    world
        .publish(
            "acces_aux_droits",
            &alert("SOS75-EVT", "acces_aux_droits", "75113"),
        )
        .await;
    world.publish("orientation_sociale", b"not an alert").await;
    assert_eq!(world.wait_for_depth(&queue, 3, WAIT).await, 3);
    app.stop().await;

    // Assert
    let schema: Value = serde_json::from_str(include_str!("../../schema/event.v2.json")).unwrap();
    let schema = jsonschema::validator_for(&schema).unwrap();
    let mut got: Vec<(String, Value)> = world
        .broker
        .take_all(&queue)
        .await
        .into_iter()
        .map(|message| {
            let mut event: Value = serde_json::from_slice(&message.body).unwrap();
            assert!(schema.is_valid(&event), "{event}");
            assert_eq!(
                message.properties.delivery_mode().as_ref(),
                Some(&2),
                "persistent"
            );
            let at = event["at"].as_str().unwrap();
            assert!(
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .is_ok(),
                "{at}"
            );
            event.as_object_mut().unwrap().remove("at");
            (message.routing_key, event)
        })
        .collect();
    got.sort_by_key(|(key, event)| (key.clone(), event.to_string()));
    assert_eq!(
        got,
        [
            (
                "=.dead_lettered".to_owned(),
                json!({ "publisher": "", "alert_id": null, "status": "dead_lettered",
                        "reason": "invalid" })
            ),
            (
                "=.delivered".to_owned(),
                json!({ "publisher": "", "alert_id": "SOS75-EVT", "status": "delivered",
                        "referent": { "id": "caf-75", "network": "caf" } })
            ),
            (
                "=.delivered".to_owned(),
                json!({ "publisher": "", "alert_id": "SOS75-EVT", "status": "delivered",
                        "referent": { "id": "cpam-75", "network": "cpam" } })
            ),
        ]
    );
    world.cleanup().await;
}
