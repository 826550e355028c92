//! MaintenanceWindow reconciler: status `open`, `currentWindow`, `nextWindows`, conditions
//! `Ready`/`Open`, Events on open and close, and a requeue exactly at the next boundary (open,
//! cutoff, close) instead of periodic polling. Status is written only when it changes.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::context::Context;
use super::error::{Error, Result};
use super::harness;
use crate::api::conditions::{self, ConditionStatus, new_condition, set_condition, set_health};
use crate::api::{MaintenanceWindow, MaintenanceWindowSpec, MaintenanceWindowStatus};
use crate::api::{OpenWindowStatus, WindowBounds};
use crate::schedule::Schedule;
use crate::schedule::duration::parse_duration;
use crate::schedule::window::{CutoffBehavior, Exclusion, WindowDefinition, parse_time_zone};

const KIND: &str = "MaintenanceWindow";
/// How many future windows status lists.
const NEXT_WINDOWS: usize = 3;

/// Why a MaintenanceWindow cannot be used: the condition reason and the parser's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidWindow {
    /// `InvalidSchedule`, `InvalidTimeZone`, `InvalidDuration` or `InvalidWindow`.
    pub reason: &'static str,
    /// What is wrong, naming the field.
    pub message: String,
}

/// When a window's `rate()` starts are counted from: `startDate`, else the object's creation
/// time (`now` for an object not yet created). One rule for the window's own status and for
/// the policies and runs that read the window, so they agree on when it opens.
pub fn rate_anchor(mw: &MaintenanceWindow, now: Timestamp) -> Timestamp {
    mw.spec
        .start_date
        .as_ref()
        .map(|t| t.0)
        .or_else(|| mw.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now)
}

/// The schedule engine's definition of a MaintenanceWindow object, anchored by [`rate_anchor`].
pub fn definition_of(
    mw: &MaintenanceWindow,
    now: Timestamp,
) -> Result<WindowDefinition, InvalidWindow> {
    window_definition(&mw.spec, rate_anchor(mw, now))
}

/// Build the schedule engine's definition of a window from its spec. `anchor` is when `rate()`
/// schedules start counting (startDate, else the object's creation time).
pub fn window_definition(
    spec: &MaintenanceWindowSpec,
    anchor: Timestamp,
) -> Result<WindowDefinition, InvalidWindow> {
    let invalid = |reason: &'static str, message: String| InvalidWindow { reason, message };
    let schedule = Schedule::parse(&spec.schedule)
        .map_err(|e| invalid("InvalidSchedule", format!("schedule: {e}")))?;
    let time_zone = parse_time_zone(spec.time_zone.as_deref().unwrap_or("UTC"))
        .map_err(|e| invalid("InvalidTimeZone", e.to_string()))?;
    let duration = parse_duration(&spec.duration)
        .map_err(|e| invalid("InvalidDuration", format!("duration: {e}")))?;
    let mut def = WindowDefinition::new(schedule, time_zone, duration, anchor);
    if let Some(cutoff) = &spec.cutoff {
        def.cutoff = parse_duration(cutoff)
            .map_err(|e| invalid("InvalidDuration", format!("cutoff: {e}")))?;
    }
    def.cutoff_behavior = match spec.cutoff_behavior {
        crate::api::CutoffBehavior::ContinueTask => CutoffBehavior::ContinueTask,
        crate::api::CutoffBehavior::CancelTask => CutoffBehavior::CancelTask,
    };
    def.offset_days = spec.schedule_offset_days.unwrap_or(0);
    def.start_date = spec.start_date.as_ref().map(|t| t.0);
    def.end_date = spec.end_date.as_ref().map(|t| t.0);
    def.exclusions = spec
        .exclusions
        .iter()
        .map(|e| Exclusion {
            name: e.name.clone(),
            start: e.start.0,
            end: e.end.0,
        })
        .collect();
    def.suspend = spec.suspend;
    def.validate()
        .map_err(|e| invalid("InvalidWindow", e.to_string()))?;
    Ok(def)
}

/// Something worth an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WindowEvent {
    /// A window opened.
    Opened { start: Timestamp, end: Timestamp },
    /// The open window closed.
    Closed,
    /// The spec became invalid.
    Invalid(InvalidWindow),
}

/// What the reconciler should do: the status to hold, when to look again, Events to emit.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowStatusPlan {
    /// Desired status (conditions keep their old lastTransitionTime when unchanged).
    pub status: MaintenanceWindowStatus,
    /// Requeue at this instant (the next boundary); None waits for an edit.
    pub requeue_at: Option<Timestamp>,
    /// Events to emit.
    pub events: Vec<WindowEvent>,
    /// Whether `status` differs from the old one (ignoring condition timestamps).
    pub changed: bool,
}

/// Decide the status of a window at `now`. Pure: everything it needs is passed in.
pub fn plan_window_status(
    spec: &MaintenanceWindowSpec,
    generation: Option<i64>,
    anchor: Timestamp,
    old: Option<&MaintenanceWindowStatus>,
    now: Timestamp,
) -> WindowStatusPlan {
    let mut conditions = old.map(|s| s.conditions.clone()).unwrap_or_default();
    let was_open = old.is_some_and(|s| s.open);
    let mut events = vec![];
    let (status_core, requeue_at) = match window_definition(spec, anchor) {
        Err(invalid) => {
            events.extend(invalid_conditions(
                &mut conditions,
                invalid,
                generation,
                now,
            ));
            ((false, None, vec![]), None)
        }
        Ok(def) => {
            let current = def.window_at(now);
            let next = def.next_windows(now, NEXT_WINDOWS);
            let (reason, message) = if spec.suspend {
                (
                    "Suspended",
                    "schedule is valid; spec.suspend is true: no window opens",
                )
            } else {
                ("Valid", "schedule is valid")
            };
            set_condition(
                &mut conditions,
                new_condition(
                    conditions::READY,
                    ConditionStatus::True,
                    reason,
                    message,
                    generation,
                    now,
                ),
            );
            let (reason, message) = match (&current, next.first()) {
                (Some(w), _) => ("WindowOpen", format!("open until {}", w.end)),
                (None, _) if spec.suspend => {
                    ("Suspended", "suspended: no window opens".to_string())
                }
                (None, next) if def.exclusion_at(now).is_some() => {
                    let e = def.exclusion_at(now).expect("checked");
                    let after = next
                        .map(|n| format!("; next window opens at {}", n.start))
                        .unwrap_or_default();
                    (
                        "Excluded",
                        format!("exclusion {} in force until {}{after}", e.name, e.end),
                    )
                }
                (None, Some(n)) => ("WindowClosed", format!("next window opens at {}", n.start)),
                (None, None) => (
                    "NoUpcomingWindow",
                    "no window opens in the next years".to_string(),
                ),
            };
            set_condition(
                &mut conditions,
                new_condition(
                    conditions::OPEN,
                    current.is_some().into(),
                    reason,
                    message,
                    generation,
                    now,
                ),
            );
            let current_status = current.map(|w| OpenWindowStatus {
                start: Time(w.start),
                end: Time(w.end),
                cutoff_at: Time(w.cutoff_at),
            });
            let next_status = next
                .iter()
                .map(|w| WindowBounds {
                    start: Time(w.start),
                    end: Time(w.end),
                })
                .collect();
            match (&current, was_open) {
                (Some(w), false) => events.push(WindowEvent::Opened {
                    start: w.start,
                    end: w.end,
                }),
                (None, true) => events.push(WindowEvent::Closed),
                _ => {}
            }
            (
                (current.is_some(), current_status, next_status),
                def.next_boundary(now),
            )
        }
    };
    let (open, current_window, next_windows) = status_core;
    // kstatus (docs/gitops.md): Stalled while invalid, else Current (open, closed, excluded or
    // suspended alike).
    let health = conditions::health_from_ready(&conditions);
    set_health(&mut conditions, &health, generation, now);
    let status = MaintenanceWindowStatus {
        observed_generation: generation,
        open,
        current_window,
        next_windows,
        conditions,
    };
    let changed = match old {
        None => true,
        Some(old) => {
            old.observed_generation != status.observed_generation
                || old.open != status.open
                || old.current_window != status.current_window
                || old.next_windows != status.next_windows
                || !conditions::same_conditions(&old.conditions, &status.conditions)
        }
    };
    WindowStatusPlan {
        status,
        requeue_at,
        events,
        changed,
    }
}

/// Mark `conditions` for an invalid window (Ready and Open False); the Event to emit when the
/// window was not already invalid for the same reason.
fn invalid_conditions(
    conditions: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    invalid: InvalidWindow,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<WindowEvent> {
    let was_invalid = conditions::find(conditions, conditions::READY).is_some_and(|c| {
        c.status == "False" && c.reason == invalid.reason && c.message == invalid.message
    });
    let event = (!was_invalid).then(|| WindowEvent::Invalid(invalid.clone()));
    set_condition(
        conditions,
        new_condition(
            conditions::READY,
            ConditionStatus::False,
            invalid.reason,
            invalid.message,
            generation,
            now,
        ),
    );
    set_condition(
        conditions,
        new_condition(
            conditions::OPEN,
            ConditionStatus::False,
            "Invalid",
            "the window is invalid and never opens",
            generation,
            now,
        ),
    );
    event
}

/// Reconcile one MaintenanceWindow.
pub async fn reconcile(mw: Arc<MaintenanceWindow>, ctx: Arc<Context>) -> Result<Action> {
    harness::instrumented(KIND, mw.as_ref(), &ctx, reconcile_inner(&mw, &ctx)).await
}

async fn reconcile_inner(mw: &MaintenanceWindow, ctx: &Context) -> Result<Action> {
    mw.metadata.name.as_ref().ok_or(Error::MissingName)?;
    let now = Timestamp::now();
    let anchor = rate_anchor(mw, now);
    let plan = plan_window_status(
        &mw.spec,
        mw.metadata.generation,
        anchor,
        mw.status.as_ref(),
        now,
    );
    harness::apply_status_if(ctx, KIND, mw, &plan.status, plan.changed).await?;
    for event in &plan.events {
        publish(ctx, mw, event).await;
    }
    Ok(match plan.requeue_at {
        // Wake just after the boundary so `now` is past it when we look again.
        Some(at) => Action::requeue(until(now, at) + Duration::from_millis(20)),
        None => Action::await_change(),
    })
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    let d: SignedDuration = at.duration_since(now);
    d.try_into().unwrap_or(Duration::ZERO)
}

async fn publish(ctx: &Context, mw: &MaintenanceWindow, event: &WindowEvent) {
    let (type_, reason, note, action) = match event {
        WindowEvent::Opened { start, end } => (
            EventType::Normal,
            "WindowOpened",
            format!("window opened at {start}, closes at {end}"),
            "Open",
        ),
        WindowEvent::Closed => (
            EventType::Normal,
            "WindowClosed",
            "window closed".to_string(),
            "Close",
        ),
        WindowEvent::Invalid(invalid) => (
            EventType::Warning,
            invalid.reason,
            invalid.message.clone(),
            "Validate",
        ),
    };
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &mw.object_ref(&())).await {
        tracing::warn!(window = %mw.name_any(), error = %e, "publishing event failed");
        ctx.metrics
            .errors
            .get_or_create(&super::metrics::ErrorLabels {
                kind: KIND,
                category: "event",
            })
            .inc();
    }
}

/// Run the MaintenanceWindow controller.
pub async fn run(ctx: Arc<Context>) {
    let (store, trigger) = ctx
        .stores
        .controller_watch::<MaintenanceWindow>(&ctx.client, "MaintenanceWindow/maintenancewindow");
    let controller = Controller::for_stream(trigger, store);
    ctx.metrics.watch_windows(controller.store());
    harness::drive(KIND, controller.run(reconcile, harness::error_policy, ctx)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn spec(schedule: &str, duration: &str) -> MaintenanceWindowSpec {
        serde_json::from_value(json!({"schedule": schedule, "duration": duration})).expect("spec")
    }

    #[test]
    fn policies_and_runs_count_rate_windows_from_start_date_like_the_window_status() {
        // Policies and runs used to anchor rate() at the creation time even with a startDate,
        // so they expected the window hours away from when its own status said it opens.
        let mw: MaintenanceWindow = serde_json::from_value(json!({
            "metadata": {"name": "every-6h", "creationTimestamp": "2026-11-01T00:00:03Z"},
            "spec": {"schedule": "rate(6 hours)", "duration": "1h",
                     "startDate": "2026-11-01T01:00:00Z"}
        }))
        .expect("window");
        let now = ts("2026-11-02T00:30:00Z");
        let def = definition_of(&mw, now).expect("valid");
        assert_eq!(
            def.next_windows(now, 1)[0].start,
            ts("2026-11-02T01:00:00Z")
        );
        let plan = plan_window_status(&mw.spec, Some(1), rate_anchor(&mw, now), None, now);
        assert_eq!(
            plan.status.next_windows[0].start.0,
            ts("2026-11-02T01:00:00Z")
        );
    }

    #[test]
    fn an_exclusion_in_force_is_named_in_the_open_condition_until_it_ends() {
        // Nightly at 02:00 for 4h, with a freeze over the night of 2026-12-24.
        let mut s = spec("cron(0 2 * * ? *)", "4h");
        s.exclusions = vec![crate::api::Exclusion {
            name: "year-end-freeze".into(),
            start: Time(ts("2026-12-24T00:00:00Z")),
            end: Time(ts("2026-12-26T00:00:00Z")),
        }];
        let open = |plan: &WindowStatusPlan| {
            let c = conditions::find(&plan.status.conditions, conditions::OPEN).expect("Open");
            (c.status.clone(), c.reason.clone(), c.message.clone())
        };
        let before = ts("2026-12-23T12:00:00Z");
        let plan = plan_window_status(&s, Some(1), before, None, before);
        assert_eq!(open(&plan).1, "WindowClosed");
        assert_eq!(
            plan.requeue_at,
            Some(ts("2026-12-24T00:00:00Z")),
            "looked at again when the exclusion begins"
        );
        let during = ts("2026-12-24T03:00:00Z");
        let plan = plan_window_status(&s, Some(1), during, Some(&plan.status), during);
        assert_eq!(
            open(&plan),
            (
                "False".into(),
                "Excluded".into(),
                "exclusion year-end-freeze in force until 2026-12-26T00:00:00Z; next window opens at 2026-12-26T02:00:00Z".into()
            )
        );
        assert_eq!(plan.requeue_at, Some(ts("2026-12-26T00:00:00Z")));
        let after = ts("2026-12-26T01:00:00Z");
        let plan = plan_window_status(&s, Some(1), after, Some(&plan.status), after);
        assert_eq!(open(&plan).1, "WindowClosed");
    }

    #[test]
    fn closed_window_lists_next_three_and_requeues_at_next_open() {
        let s = spec("cron(0 2 ? * TUE#2 *)", "4h");
        let now = ts("2026-11-26T00:00:00Z");
        let plan = plan_window_status(&s, Some(1), now, None, now);
        assert!(!plan.status.open);
        assert_eq!(plan.status.next_windows.len(), 3);
        assert_eq!(
            plan.status.next_windows[0].start.0,
            ts("2026-12-08T02:00:00Z")
        );
        assert_eq!(plan.requeue_at, Some(ts("2026-12-08T02:00:00Z")));
        assert!(plan.changed);
        assert!(plan.events.is_empty());
    }

    #[test]
    fn opening_emits_an_event_and_requeues_at_cutoff_then_close() {
        let mut s = spec("cron(0 2 ? * TUE#2 *)", "4h");
        s.cutoff = Some("1h".into());
        let before = plan_window_status(
            &s,
            Some(1),
            ts("2026-11-01T00:00:00Z"),
            None,
            ts("2026-12-08T01:59:00Z"),
        );
        let open = plan_window_status(
            &s,
            Some(1),
            ts("2026-11-01T00:00:00Z"),
            Some(&before.status),
            ts("2026-12-08T02:00:00Z"),
        );
        assert!(open.status.open);
        assert_eq!(
            open.events,
            vec![WindowEvent::Opened {
                start: ts("2026-12-08T02:00:00Z"),
                end: ts("2026-12-08T06:00:00Z")
            }]
        );
        assert_eq!(
            open.status.current_window.as_ref().map(|w| w.cutoff_at.0),
            Some(ts("2026-12-08T05:00:00Z"))
        );
        assert_eq!(open.requeue_at, Some(ts("2026-12-08T05:00:00Z")));
        let closed = plan_window_status(
            &s,
            Some(1),
            ts("2026-11-01T00:00:00Z"),
            Some(&open.status),
            ts("2026-12-08T06:00:00Z"),
        );
        assert!(!closed.status.open);
        assert_eq!(closed.events, vec![WindowEvent::Closed]);
    }

    #[test]
    fn unchanged_status_is_not_rewritten() {
        let s = spec("0 1 * * *", "3h");
        let now = ts("2026-11-26T10:00:00Z");
        let first = plan_window_status(&s, Some(1), now, None, now);
        let second = plan_window_status(
            &s,
            Some(1),
            now,
            Some(&first.status),
            ts("2026-11-26T10:05:00Z"),
        );
        assert!(
            !second.changed,
            "nothing changed between two reconciles inside one closed period"
        );
        assert!(second.events.is_empty());
    }

    #[test]
    fn invalid_schedule_is_ready_false_with_the_parser_message_and_no_requeue() {
        let s = spec("cron(0 2 ? * TUE#6 *)", "4h");
        let now = ts("2026-11-26T10:00:00Z");
        let plan = plan_window_status(&s, Some(3), now, None, now);
        let ready =
            conditions::find(&plan.status.conditions, conditions::READY).expect("ready condition");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, "InvalidSchedule");
        assert!(ready.message.contains("#6"), "{}", ready.message);
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(plan.requeue_at, None);
        assert_eq!(plan.events.len(), 1);
        let stalled = conditions::find(&plan.status.conditions, conditions::STALLED)
            .expect("stalled condition");
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "InvalidSchedule")
        );
        assert_eq!(stalled.observed_generation, Some(3));
        let again = plan_window_status(
            &s,
            Some(3),
            now,
            Some(&plan.status),
            ts("2026-11-26T11:00:00Z"),
        );
        assert!(again.events.is_empty(), "the Warning is emitted once");
        assert!(!again.changed);
    }

    #[test]
    fn invalid_time_zone_is_reported() {
        let mut s = spec("0 1 * * *", "3h");
        s.time_zone = Some("Mars/Olympus".into());
        let now = ts("2026-11-26T10:00:00Z");
        let plan = plan_window_status(&s, Some(1), now, None, now);
        let ready = conditions::find(&plan.status.conditions, conditions::READY).expect("ready");
        assert_eq!(ready.reason, "InvalidTimeZone");
        assert!(ready.message.contains("Mars/Olympus"));
    }

    #[test]
    fn suspended_window_never_opens() {
        let mut s = spec("0 * * * *", "1h");
        s.suspend = true;
        let now = ts("2026-11-26T10:30:00Z");
        let plan = plan_window_status(&s, Some(1), now, None, now);
        assert!(!plan.status.open);
        assert!(plan.status.next_windows.is_empty());
        let open = conditions::find(&plan.status.conditions, conditions::OPEN).expect("open");
        assert_eq!(open.reason, "Suspended");
        let ready = conditions::find(&plan.status.conditions, conditions::READY).expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Suspended")
        );
        assert!(
            !conditions::is_true(&plan.status.conditions, conditions::STALLED)
                && !conditions::is_true(&plan.status.conditions, conditions::RECONCILING),
            "a suspended window is Current for kstatus"
        );
    }
}
