//! The MaintenanceWindow controller on the real apiserver: a window opens within 2 s of its
//! start and closes at an exclusion; an invalid schedule is Ready=False with the parser's
//! message while other windows keep working; nothing is written while nothing changes.

mod support;

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp, tz::TimeZone};
use kube::api::{Api, PostParams};
use nodepatch::api::MaintenanceWindow;
use serde_json::json;

fn window(name: &str, spec: serde_json::Value) -> MaintenanceWindow {
    serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1",
        "kind": "MaintenanceWindow",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("window literal")
}

fn at_expr(t: Timestamp) -> String {
    let local = t.to_zoned(TimeZone::UTC);
    format!("at({})", local.strftime("%Y-%m-%dT%H:%M:%S"))
}

#[tokio::test]
async fn window_opens_and_closes_on_time_invalid_one_is_reported_and_idle_controller_does_not_write()
 {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let _controller = support::ControllerProcess::start("controller-mw", &[]);
    let api: Api<MaintenanceWindow> = Api::all(client.clone());
    let pp = PostParams::default();

    // Opens at a whole second ~6 s from now; an exclusion closes it 6 s later.
    let now = Timestamp::now();
    let start = Timestamp::from_second(now.as_second() + 6).expect("start");
    let close = start + SignedDuration::from_secs(6);
    let soon = support::unique_name("mw-soon");
    api.create(
        &pp,
        &window(
            &soon,
            json!({
                "schedule": at_expr(start),
                "duration": "1h",
                "exclusions": [{"name": "stop", "start": close.to_string(), "end": (close + SignedDuration::from_hours(2)).to_string()}]
            }),
        ),
    )
    .await
    .expect("create window");
    let invalid = support::unique_name("mw-invalid");
    api.create(
        &pp,
        &window(
            &invalid,
            json!({"schedule": "cron(0 2 ? * TUE#6 *)", "duration": "4h"}),
        ),
    )
    .await
    .expect("create invalid window (the shape is valid; the grammar is not)");
    let monthly = support::unique_name("mw-monthly");
    api.create(&pp, &window(&monthly, json!({"schedule": "cron(0 2 ? * TUE#2 *)", "timeZone": "Europe/Berlin", "duration": "4h", "cutoff": "1h"})))
        .await
        .expect("create monthly window");

    // Before the start: closed, with the start as next window.
    let next = support::eventually(Duration::from_secs(10), "status of the soon window", || {
        let api = api.clone();
        let soon = soon.clone();
        async move {
            let s = api.get(&soon).await.ok()?.status?;
            (!s.open).then_some(s.next_windows.first()?.start.0)
        }
    })
    .await;
    assert_eq!(next, start);

    // Invalid: Ready=False with the parser's message.
    let ready = support::eventually(
        Duration::from_secs(10),
        "Ready=False on the invalid window",
        || {
            let api = api.clone();
            let invalid = invalid.clone();
            async move {
                let s = api.get(&invalid).await.ok()?.status?;
                s.conditions
                    .into_iter()
                    .find(|c| c.type_ == "Ready" && c.status == "False")
            }
        },
    )
    .await;
    assert_eq!(ready.reason, "InvalidSchedule");
    assert!(
        ready.message.contains("dow") && ready.message.contains("#6"),
        "{}",
        ready.message
    );

    // Opens within 2 s after the boundary.
    let opened_at = support::eventually(Duration::from_secs(20), "window open", || {
        let api = api.clone();
        let soon = soon.clone();
        async move { api.get(&soon).await.ok()?.status?.open.then(Timestamp::now) }
    })
    .await;
    assert!(
        opened_at >= start,
        "opened before its start: {opened_at} < {start}"
    );
    assert!(
        opened_at.duration_since(start) <= SignedDuration::from_secs(2),
        "opened {} after start",
        opened_at.duration_since(start)
    );
    let current = api
        .get(&soon)
        .await
        .expect("get")
        .status
        .and_then(|s| s.current_window)
        .expect("current window");
    assert_eq!(
        (current.start.0, current.end.0),
        (start, close),
        "the exclusion clips the end"
    );

    // Closes at the exclusion, within 2 s.
    let closed_at = support::eventually(Duration::from_secs(20), "window closed", || {
        let api = api.clone();
        let soon = soon.clone();
        async move { (!api.get(&soon).await.ok()?.status?.open).then(Timestamp::now) }
    })
    .await;
    assert!(
        closed_at >= close && closed_at.duration_since(close) <= SignedDuration::from_secs(2),
        "closed at {closed_at}, expected {close}"
    );

    // The monthly window is valid and lists its next 3 windows despite the invalid neighbour.
    let monthly_status = api
        .get(&monthly)
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(monthly_status.next_windows.len(), 3);
    assert!(
        monthly_status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );

    // Events were recorded for the open and the close.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    // The Event follows the status write, so wait for it rather than reading once.
    support::eventually_true(
        Duration::from_secs(20),
        "WindowOpened and WindowClosed Events",
        || async {
            let Ok(list) = events.list(&Default::default()).await else {
                return false;
            };
            let reasons: Vec<String> = list
                .items
                .into_iter()
                .filter(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(soon.as_str())
                })
                .filter_map(|e| e.reason)
                .collect();
            reasons.iter().any(|r| r == "WindowOpened")
                && reasons.iter().any(|r| r == "WindowClosed")
        },
    )
    .await;

    // Nothing changes for the next 60 s: the controller writes nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = support::apiserver_write_count(&client, "maintenancewindows").await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = support::apiserver_write_count(&client, "maintenancewindows").await;
    assert_eq!(
        after - before,
        0.0,
        "writes to maintenancewindows while idle"
    );

    for name in [&soon, &invalid, &monthly] {
        let _ = api.delete(name, &Default::default()).await;
    }
}
