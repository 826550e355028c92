//! MaintenanceWindow: when installs (and reboots) may disrupt nodes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::DURATION_PATTERN;

/// CEL shape check of a schedule expression. The full grammar (field ranges, `L`, `W`, `#`) is
/// checked by the controller, which reports Ready=False with reason InvalidSchedule.
const SCHEDULE_SHAPE_RULE: &str = r"self.matches('^(cron\\([^ ()]+( [^ ()]+){5}\\)|rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|at\\([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\)|[^ ()]+( [^ ()]+){4})$')";
const SCHEDULE_SHAPE_MESSAGE: &str = "schedule must be cron(min hour dom month dow year), a 5-field cron expression, rate(N minutes|hours|days) or at(YYYY-MM-DDThh:mm:ss)";

/// A recurring (or one-off) period in which installs and reboots may run.
#[derive(CustomResource, KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "nodepatch.dev",
    version = "v1alpha1",
    kind = "MaintenanceWindow",
    plural = "maintenancewindows",
    shortname = "npmw",
    doc = "When installs may disrupt nodes: a schedule (AWS `cron(...)`, `rate(...)`, `at(...)` or plain cron) in a time zone, a duration, a cutoff after which no new node starts, and exclusions. PatchPolicies name windows in `spec.install.maintenanceWindowRefs`. Written by users; the controller writes the status (open now, the next windows, conditions).",
    category = "nodepatch",
    status = "MaintenanceWindowStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"TimeZone","type":"string","jsonPath":".spec.timeZone"}"#,
    printcolumn = r#"{"name":"Open","type":"boolean","jsonPath":".status.open"}"#,
    printcolumn = r#"{"name":"Next","type":"string","format":"date-time","jsonPath":".status.nextWindows[0].start"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("duration(self.duration) >= duration('1h') && duration(self.duration) <= duration('24h')").message("duration must be between 1h and 24h").field_path(".duration"),
    validation = Rule::new("!has(self.cutoff) || (duration(self.cutoff) <= duration('23h') && duration(self.cutoff) < duration(self.duration))").message("cutoff must be at most 23h and less than duration").field_path(".cutoff"),
    validation = Rule::new("!has(self.scheduleOffsetDays) || self.scheduleOffsetDays == 0 || !(self.schedule.startsWith('rate(') || self.schedule.startsWith('at('))").message("scheduleOffsetDays applies to cron schedules only").field_path(".scheduleOffsetDays"),
    validation = Rule::new("!has(self.startDate) || !has(self.endDate) || self.startDate < self.endDate").message("startDate must be before endDate").field_path(".endDate")
)]
pub struct MaintenanceWindowSpec {
    /// When windows start: AWS `cron(min hour dom month dow year)` with `? L W # , - * /`
    /// (day-of-week 1=SUN…7=SAT, one of dom/dow must be `?`), a plain 5-field cron expression
    /// (0=SUN), `rate(N minutes|hours|days)` or `at(YYYY-MM-DDThh:mm:ss)` (one-off). Times are
    /// local to timeZone. Example: `cron(0 2 ? * TUE#2 *)` is 02:00 on the second Tuesday.
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new(SCHEDULE_SHAPE_RULE).message(SCHEDULE_SHAPE_MESSAGE))]
    pub schedule: String,
    /// IANA time zone of the schedule (e.g. `Europe/Berlin`). Default UTC. DST: a start in a
    /// skipped hour starts at the first valid instant after it; a start in a repeated hour
    /// happens once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z][A-Za-z0-9_+/-]*$"))]
    pub time_zone: Option<String>,
    /// How long each window stays open, 1h to 24h (e.g. `4h`).
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub duration: String,
    /// No new node starts after end minus cutoff; 0 to 23h and less than duration. Default 0s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub cutoff: Option<String>,
    /// What happens to nodes still in progress at the cutoff: ContinueTask lets them finish,
    /// CancelTask stops them (no new install step starts; the run ends TimedOut).
    #[serde(default)]
    pub cutoff_behavior: CutoffBehavior,
    /// Shift every cron match by this many days (0–6), e.g. Patch Tuesday + 2 with
    /// `cron(0 2 ? * TUE#2 *)` and 2. Cron schedules only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 6))]
    pub schedule_offset_days: Option<u8>,
    /// No window starts before this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<Time>,
    /// No window starts after this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<Time>,
    /// Blackout ranges (change freezes): no window opens inside one, and an open window closes
    /// at its start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub exclusions: Vec<Exclusion>,
    /// Suspend the window: it never opens while true.
    #[serde(default)]
    pub suspend: bool,
}

/// What to do with nodes in progress when the cutoff is reached.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum CutoffBehavior {
    /// In-flight nodes finish; no new nodes start.
    #[default]
    ContinueTask,
    /// In-flight nodes are stopped before their next disruptive step.
    CancelTask,
}

/// A blackout range.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.start < self.end").message("exclusion start must be before end").field_path(".end"))]
pub struct Exclusion {
    /// Name shown in the window's `Open` condition (reason `Excluded`, "exclusion
    /// year-end-freeze in force until …") while the exclusion is in force and no window is open
    /// (e.g. `year-end-freeze`).
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Start of the blackout (RFC 3339).
    pub start: Time,
    /// End of the blackout (RFC 3339).
    pub end: Time,
}

/// Observed state of a MaintenanceWindow.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindowStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// True while a window is open.
    #[serde(default)]
    pub open: bool,
    /// The open window, when open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_window: Option<OpenWindowStatus>,
    /// The next windows (up to 3) that start after now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub next_windows: Vec<WindowBounds>,
    /// Ready (schedule valid; reason Suspended when `spec.suspend`), Open, and kstatus's
    /// Reconciling and Stalled: Stalled True while the window is invalid, both False otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// An open window.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OpenWindowStatus {
    /// When the window opened.
    pub start: Time,
    /// When it closes (clipped at the start of an exclusion).
    pub end: Time,
    /// After this instant no new node starts.
    pub cutoff_at: Time,
}

/// A future window.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WindowBounds {
    /// When the window opens.
    pub start: Time,
    /// When it closes.
    pub end: Time,
}
