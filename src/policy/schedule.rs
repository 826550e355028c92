//! Which run of a policy is due: an install once per open maintenance window (until its
//! cutoff), a scan on the scan schedule (at once for a new policy), never two at a time — a run
//! due while another is active is deferred with an Event.

use k8s_openapi::jiff::{SignedDuration, Timestamp, tz::TimeZone};
use sha2::Digest;

use super::model::{NewRun, PolicyEvent, RunRecord, Wake};
use super::references::References;
use crate::api::{Operation, PatchPolicy, RunTrigger};
use crate::schedule::window::WindowDefinition;

/// How soon a deferred run is looked at again.
const DEFERRED_POLL: SignedDuration = SignedDuration::from_secs(30);

/// Name of a scheduled run: `<policy>-<scan|install>-<yyyymmdd-hhmm>`, shortened with a hash
/// when the policy name is long (run names are label values: ≤ 63 characters).
pub fn scheduled_run_name(policy: &str, operation: Operation, at: Timestamp) -> String {
    let stamp = at
        .to_zoned(TimeZone::UTC)
        .strftime("%Y%m%d-%H%M%S")
        .to_string();
    let op = match operation {
        Operation::Scan => "scan",
        Operation::Install => "install",
        Operation::Preview => "preview",
    };
    let full = format!("{policy}-{op}-{stamp}");
    if full.len() <= 63 {
        return full;
    }
    let digest = sha2::Sha256::digest(policy.as_bytes());
    let hash: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    let keep = 63 - (op.len() + stamp.len() + hash.len() + 3);
    let prefix: String = policy
        .chars()
        .take(keep)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string();
    format!("{prefix}-{hash}-{op}-{stamp}")
}

/// The run to create now, if one is due and none is active (`runs` newest first). A due run
/// while `active` runs is deferred: an Event, and a look again soon.
pub(crate) fn due_run(
    policy: &PatchPolicy,
    refs: &References,
    runs: &[&RunRecord],
    active: Option<&RunRecord>,
    now: Timestamp,
    wake: &mut Wake,
    events: &mut Vec<PolicyEvent>,
) -> Option<NewRun> {
    let scheduled = |op: Operation| {
        runs.iter()
            .filter(move |r| r.operation == op && r.trigger == RunTrigger::Schedule)
    };
    let open_window = refs
        .windows
        .iter()
        .filter_map(|d| d.window_at(now))
        .find(|w| w.accepts_new_work(now));
    let install_due = policy
        .spec
        .install
        .as_ref()
        .and(open_window)
        .filter(|w| !scheduled(Operation::Install).any(|r| r.created >= w.start));
    let scan_due = match &refs.scan {
        Ok(def) => match scheduled(Operation::Scan).map(|r| r.created).max() {
            // A new policy scans at once, so compliance is known without waiting a day.
            None => true,
            Some(last) => match def.next_windows(last, 1).first() {
                Some(w) if w.start <= now => true,
                Some(w) => {
                    wake.at(w.start);
                    false
                }
                None => false,
            },
        },
        Err(_) => false,
    };
    let due = if install_due.is_some() {
        Operation::Install
    } else if scan_due {
        Operation::Scan
    } else {
        return None;
    };
    match active {
        None => Some(NewRun {
            name: scheduled_run_name(&policy.metadata.name.clone().unwrap_or_default(), due, now),
            operation: due,
        }),
        Some(a) => {
            events.push(PolicyEvent::RunDeferred {
                operation: due,
                active: a.name.clone(),
            });
            wake.at(now + DEFERRED_POLL);
            None
        }
    }
}

/// Start of the open install window, else of the next one.
pub fn next_install_window(windows: &[WindowDefinition], now: Timestamp) -> Option<Timestamp> {
    windows
        .iter()
        .filter_map(|d| d.window_at(now))
        .map(|w| w.start)
        .min()
        .or_else(|| {
            windows
                .iter()
                .filter_map(|d| d.next_windows(now, 1).into_iter().next())
                .map(|w| w.start)
                .min()
        })
}
