//! The API at admission on the real apiserver: every sample is accepted, every invalid manifest
//! of the corpus is rejected with a message naming the field, printer columns and
//! `kubectl explain` text are served.

mod support;

use std::process::Command;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn api_resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "PatchBaseline" => "patchbaselines",
        "MaintenanceWindow" => "maintenancewindows",
        "PatchPolicy" => "patchpolicies",
        "PatchRun" => "patchruns",
        "NodePatchReport" => "nodepatchreports",
        other => panic!("unknown kind {other}"),
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("nodepatch.dev", "v1alpha1", kind),
        plural,
    )
}

fn dynamic_api(client: &Client, kind: &str) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &api_resource(kind))
}

fn valid_spec(kind: &str) -> Value {
    match kind {
        "PatchBaseline" => json!({
            "operatingSystem": "Ubuntu",
            "approvalRules": [{
                "filters": [{"key": "Priority", "values": ["Required", "Important"]}],
                "approveAfterDays": 7,
                "complianceLevel": "High"
            }],
            "approvedPatches": ["openssl"],
            "rejectedPatches": ["telnet"],
            "sources": [{"name": "mirror", "products": ["Ubuntu24.04"], "configuration": "deb http://mirror.example/ubuntu noble main"}]
        }),
        "MaintenanceWindow" => json!({
            "schedule": "cron(0 2 ? * TUE#2 *)",
            "timeZone": "Europe/Berlin",
            "duration": "4h",
            "cutoff": "1h",
            "exclusions": [{"name": "freeze", "start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z"}]
        }),
        "PatchPolicy" => json!({
            "nodeSelector": {"matchLabels": {"pool": "prod"}},
            "baselineRefs": ["ubuntu-prod"],
            "install": {"maintenanceWindowRefs": ["patch-tuesday"]},
            "rollout": {"maxConcurrency": "10%", "maxErrors": 1, "topologyKey": "topology.kubernetes.io/zone"},
            "drain": {"timeout": "15m"}
        }),
        "PatchRun" => json!({"policyRef": "production", "operation": "Install"}),
        other => panic!("unknown kind {other}"),
    }
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("object literal")
}

/// Set (Some) or remove (None) the value at a JSON pointer below `spec`.
fn mutate(mut spec: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, last) = pointer.rsplit_once('/').expect("pointer has a parent");
    let target = spec
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no parent {parent} in valid spec"));
    match value {
        Some(v) => match target {
            Value::Object(map) => {
                map.insert(last.to_string(), v);
            }
            Value::Array(items) => {
                let i: usize = last.parse().expect("array index");
                items[i] = v;
            }
            _ => panic!("parent of {pointer} is not a container"),
        },
        None => {
            target.as_object_mut().expect("object parent").remove(last);
        }
    }
    spec
}

struct Case {
    kind: &'static str,
    what: &'static str,
    pointer: &'static str,
    value: Option<Value>,
    field: &'static str,
    message: Option<&'static str>,
}

fn case(
    kind: &'static str,
    what: &'static str,
    pointer: &'static str,
    value: Value,
    field: &'static str,
) -> Case {
    Case {
        kind,
        what,
        pointer,
        value: Some(value),
        field,
        message: None,
    }
}

fn removed(
    kind: &'static str,
    what: &'static str,
    pointer: &'static str,
    field: &'static str,
) -> Case {
    Case {
        kind,
        what,
        pointer,
        value: None,
        field,
        message: None,
    }
}

fn with_message(mut c: Case, message: &'static str) -> Case {
    c.message = Some(message);
    c
}

fn long(n: usize) -> String {
    "a".repeat(n)
}

fn invalid_corpus() -> Vec<Case> {
    const PB: &str = "PatchBaseline";
    const MW: &str = "MaintenanceWindow";
    const PP: &str = "PatchPolicy";
    const PR: &str = "PatchRun";
    let rule = valid_spec(PB)["approvalRules"][0].clone();
    let filter = rule["filters"][0].clone();
    vec![
        // PatchBaseline
        case(
            PB,
            "unknown operating system",
            "/operatingSystem",
            json!("Windows"),
            "spec.operatingSystem",
        ),
        removed(
            PB,
            "missing operating system",
            "/operatingSystem",
            "spec.operatingSystem",
        ),
        case(
            PB,
            "approveAfterDays above 360",
            "/approvalRules/0/approveAfterDays",
            json!(361),
            "spec.approvalRules[0].approveAfterDays",
        ),
        case(
            PB,
            "negative approveAfterDays",
            "/approvalRules/0/approveAfterDays",
            json!(-1),
            "spec.approvalRules[0].approveAfterDays",
        ),
        with_message(
            case(
                PB,
                "approveAfterDays with approveUntilDate",
                "/approvalRules/0/approveUntilDate",
                json!("2026-01-01"),
                "spec.approvalRules[0].approveUntilDate",
            ),
            "mutually exclusive",
        ),
        case(
            PB,
            "approveUntilDate month 13",
            "/approvalRules/0",
            json!({"approveUntilDate": "2026-13-01"}),
            "spec.approvalRules[0].approveUntilDate",
        ),
        case(
            PB,
            "unknown compliance level",
            "/approvalRules/0/complianceLevel",
            json!("Severe"),
            "spec.approvalRules[0].complianceLevel",
        ),
        // SSM rejects keys an operating system lacks (DescribePatchProperties:
        // "REDHAT_ENTERPRISE_LINUX Valid properties: PRODUCT | CLASSIFICATION | SEVERITY").
        with_message(
            case(
                PB,
                "Priority filter on a RHEL baseline",
                "/operatingSystem",
                json!("RedHatEnterpriseLinux"),
                "spec",
            ),
            "filter key Priority is not valid for operatingSystem RedHatEnterpriseLinux",
        ),
        // Severity does not apply to apt baselines (apt lists carry no severity).
        with_message(
            case(
                PB,
                "Severity filter on an Ubuntu baseline",
                "/approvalRules/0/filters/0/key",
                json!("Severity"),
                "spec",
            ),
            "filter key Severity is not valid for operatingSystem Ubuntu",
        ),
        with_message(
            case(
                PB,
                "Severity global filter on an Ubuntu baseline",
                "/globalFilters",
                json!([{"key": "Severity", "values": ["*"]}]),
                "spec",
            ),
            "filter key Severity is not valid for operatingSystem Ubuntu",
        ),
        with_message(
            case(
                PB,
                "CveId global filter on an Ubuntu baseline",
                "/globalFilters",
                json!([{"key": "CveId", "values": ["CVE-2024-6387"]}]),
                "spec",
            ),
            "filter key CveId is not valid for operatingSystem Ubuntu",
        ),
        case(
            PB,
            "unknown filter key",
            "/approvalRules/0/filters/0/key",
            json!("Color"),
            "spec.approvalRules[0].filters[0].key",
        ),
        case(
            PB,
            "empty filter values",
            "/approvalRules/0/filters/0/values",
            json!([]),
            "spec.approvalRules[0].filters[0].values",
        ),
        case(
            PB,
            "21 filter values",
            "/approvalRules/0/filters/0/values",
            json!(vec!["x"; 21]),
            "spec.approvalRules[0].filters[0].values",
        ),
        case(
            PB,
            "filter value of 65 chars",
            "/approvalRules/0/filters/0/values/0",
            json!(long(65)),
            "spec.approvalRules[0].filters[0].values[0]",
        ),
        case(
            PB,
            "filter value with a space",
            "/approvalRules/0/filters/0/values/0",
            json!("a b"),
            "spec.approvalRules[0].filters[0].values[0]",
        ),
        case(
            PB,
            "5 filters in a rule",
            "/approvalRules/0/filters",
            json!(vec![filter.clone(); 5]),
            "spec.approvalRules[0].filters",
        ),
        case(
            PB,
            "11 approval rules",
            "/approvalRules",
            json!(vec![rule.clone(); 11]),
            "spec.approvalRules",
        ),
        case(
            PB,
            "5 global filters",
            "/globalFilters",
            json!(vec![filter.clone(); 5]),
            "spec.globalFilters",
        ),
        case(
            PB,
            "approved patch with leading dash",
            "/approvedPatches/0",
            json!("-oops"),
            "spec.approvedPatches[0]",
        ),
        case(
            PB,
            "approved patch with shell metacharacters",
            "/approvedPatches/0",
            json!("curl;reboot"),
            "spec.approvedPatches[0]",
        ),
        case(
            PB,
            "approved patch with whitespace",
            "/approvedPatches/0",
            json!("open ssl"),
            "spec.approvedPatches[0]",
        ),
        case(
            PB,
            "rejected patch with command substitution",
            "/rejectedPatches/0",
            json!("$(reboot)"),
            "spec.rejectedPatches[0]",
        ),
        case(
            PB,
            "501 approved patches",
            "/approvedPatches",
            json!((0..501).map(|i| format!("p{i}")).collect::<Vec<_>>()),
            "spec.approvedPatches",
        ),
        case(
            PB,
            "unknown rejectedPatchesAction",
            "/rejectedPatchesAction",
            json!("Ignore"),
            "spec.rejectedPatchesAction",
        ),
        case(
            PB,
            "description over 1024 chars",
            "/description",
            json!(long(1025)),
            "spec.description",
        ),
        case(
            PB,
            "source name with a space",
            "/sources/0/name",
            json!("Bad Name"),
            "spec.sources[0].name",
        ),
        case(
            PB,
            "source without configuration",
            "/sources/0/configuration",
            json!(""),
            "spec.sources[0].configuration",
        ),
        // Alternative patch sources (spec.sources): apt one-line entries only, no shell
        // metacharacters, Debian/Ubuntu only.
        with_message(
            case(
                PB,
                "source configuration with a `;`",
                "/sources/0/configuration",
                json!("deb http://mirror.example/ubuntu noble main; rm -rf /"),
                "spec.sources[0].configuration",
            ),
            "apt one-line sources",
        ),
        with_message(
            case(
                PB,
                "source configuration with a command substitution",
                "/sources/0/configuration",
                json!("deb http://mirror.example/$(id) noble main"),
                "spec.sources[0].configuration",
            ),
            "apt one-line sources",
        ),
        with_message(
            case(
                PB,
                "source configuration with backticks and quotes",
                "/sources/0/configuration",
                json!("deb \"http://mirror.example/`id`\" noble main"),
                "spec.sources[0].configuration",
            ),
            "apt one-line sources",
        ),
        with_message(
            case(
                PB,
                "source configuration with a deb-src line",
                "/sources/0/configuration",
                json!(
                    "deb http://m.example/ubuntu noble main\ndeb-src http://m.example/ubuntu noble main"
                ),
                "spec.sources[0].configuration",
            ),
            "apt one-line sources",
        ),
        with_message(
            case(
                PB,
                "source configuration as a deb822 stanza",
                "/sources/0/configuration",
                json!("Types: deb\nURIs: http://m.example/ubuntu\nSuites: noble\nComponents: main"),
                "spec.sources[0].configuration",
            ),
            "apt one-line sources",
        ),
        with_message(
            case(
                PB,
                "source configuration with an unknown option",
                "/sources/0/configuration",
                json!("deb [allow-insecure=yes] http://m.example/ubuntu noble main"),
                "spec.sources[0].configuration",
            ),
            "apt one-line sources",
        ),
        with_message(
            case(
                PB,
                "source configuration with an ftp URI",
                "/sources/0/configuration",
                json!("deb ftp://m.example/ubuntu noble main"),
                "spec.sources[0].configuration",
            ),
            "apt one-line sources",
        ),
        with_message(
            case(
                PB,
                "source configuration of comments only",
                "/sources/0/configuration",
                json!("# deb http://m.example/ubuntu noble main\n"),
                "spec.sources[0].configuration",
            ),
            "at least one deb line",
        ),
        with_message(
            case(
                PB,
                "apt sources on a RHEL baseline",
                "/operatingSystem",
                json!("RedHatEnterpriseLinux"),
                "spec.sources",
            ),
            "must be dnf .repo files",
        ),
        with_message(
            case(
                PB,
                "sources on a SUSE baseline",
                "/operatingSystem",
                json!("SUSE"),
                "spec.sources",
            ),
            "not SUSE",
        ),
        with_message(
            case(
                PB,
                "a .repo source on an Ubuntu baseline",
                "/sources/0/configuration",
                json!("[mirror]\nbaseurl=https://m.example/rocky/9/BaseOS/x86_64/os/\n"),
                "spec.sources",
            ),
            "must be apt one-line sources",
        ),
        with_message(
            case(
                PB,
                "a .repo source with a key outside the allow-list",
                "/sources/0/configuration",
                json!("[mirror]\nbaseurl=https://m.example/os/\nsslclientkey=/root/key\n"),
                "spec.sources[0].configuration",
            ),
            "dnf .repo file",
        ),
        with_message(
            case(
                PB,
                "a .repo source with a dnf variable",
                "/sources/0/configuration",
                json!("[mirror]\nbaseurl=https://m.example/$releasever/os/\n"),
                "spec.sources[0].configuration",
            ),
            "dnf .repo file",
        ),
        case(
            PB,
            "21 sources",
            "/sources",
            json!(vec![valid_spec(PB)["sources"][0].clone(); 21]),
            "spec.sources",
        ),
        // MaintenanceWindow
        with_message(
            case(
                MW,
                "free-text schedule",
                "/schedule",
                json!("every tuesday"),
                "spec.schedule",
            ),
            "schedule must be",
        ),
        case(
            MW,
            "AWS cron with 4 fields",
            "/schedule",
            json!("cron(0 2 * *)"),
            "spec.schedule",
        ),
        case(
            MW,
            "rate of zero",
            "/schedule",
            json!("rate(0 hours)"),
            "spec.schedule",
        ),
        case(
            MW,
            "at without seconds",
            "/schedule",
            json!("at(2026-12-01T02:00)"),
            "spec.schedule",
        ),
        with_message(
            case(
                MW,
                "duration under 1h",
                "/duration",
                json!("30m"),
                "spec.duration",
            ),
            "between 1h and 24h",
        ),
        case(
            MW,
            "duration over 24h",
            "/duration",
            json!("25h"),
            "spec.duration",
        ),
        case(
            MW,
            "duration in words",
            "/duration",
            json!("4 hours"),
            "spec.duration",
        ),
        removed(MW, "missing duration", "/duration", "spec.duration"),
        with_message(
            case(
                MW,
                "cutoff equal to duration",
                "/cutoff",
                json!("4h"),
                "spec.cutoff",
            ),
            "less than duration",
        ),
        case(
            MW,
            "scheduleOffsetDays 7",
            "/scheduleOffsetDays",
            json!(7),
            "spec.scheduleOffsetDays",
        ),
        case(
            MW,
            "unknown cutoffBehavior",
            "/cutoffBehavior",
            json!("Abort"),
            "spec.cutoffBehavior",
        ),
        case(
            MW,
            "time zone with shell text",
            "/timeZone",
            json!("Europe/Berlin;rm"),
            "spec.timeZone",
        ),
        case(
            MW,
            "exclusion ending before it starts",
            "/exclusions/0/end",
            json!("2026-12-01T00:00:00Z"),
            "spec.exclusions[0].end",
        ),
        case(
            MW,
            "exclusion name with capitals",
            "/exclusions/0/name",
            json!("Freeze"),
            "spec.exclusions[0].name",
        ),
        // PatchPolicy
        removed(
            PP,
            "missing nodeSelector",
            "/nodeSelector",
            "spec.nodeSelector",
        ),
        with_message(
            case(
                PP,
                "maxConcurrency 0%",
                "/rollout/maxConcurrency",
                json!("0%"),
                "spec.rollout.maxConcurrency",
            ),
            "maxConcurrency must be",
        ),
        case(
            PP,
            "maxConcurrency 0",
            "/rollout/maxConcurrency",
            json!(0),
            "spec.rollout.maxConcurrency",
        ),
        case(
            PP,
            "maxConcurrency 101%",
            "/rollout/maxConcurrency",
            json!("101%"),
            "spec.rollout.maxConcurrency",
        ),
        case(
            PP,
            "maxConcurrency in words",
            "/rollout/maxConcurrency",
            json!("ten"),
            "spec.rollout.maxConcurrency",
        ),
        // Integers and int-or-percent strings beyond what the controller's types hold (an
        // int-or-string integer is an i32) are refused here rather than failing the run later.
        case(
            PP,
            "maxConcurrency 5000000000 as a string",
            "/rollout/maxConcurrency",
            json!("5000000000"),
            "spec.rollout.maxConcurrency",
        ),
        case(
            PP,
            "maxConcurrency 5000000000 as an integer",
            "/rollout/maxConcurrency",
            json!(5_000_000_000_i64),
            "spec.rollout.maxConcurrency",
        ),
        case(
            PP,
            "maxConcurrency with a 30-digit string",
            "/rollout/maxConcurrency",
            json!("1".repeat(30)),
            "spec.rollout.maxConcurrency",
        ),
        case(
            PP,
            "maxErrors 5000000000 as an integer",
            "/rollout/maxErrors",
            json!(5_000_000_000_i64),
            "spec.rollout.maxErrors",
        ),
        case(
            PP,
            "maxErrors 5000000000 as a string",
            "/rollout/maxErrors",
            json!("5000000000"),
            "spec.rollout.maxErrors",
        ),
        case(
            PP,
            "historyLimit beyond u32",
            "/historyLimit",
            json!(4_294_967_296_i64),
            "spec.historyLimit",
        ),
        with_message(
            case(
                PP,
                "gracePeriod beyond u32 seconds",
                "/drain/gracePeriod",
                json!("4294967296s"),
                "spec.drain.gracePeriod",
            ),
            "gracePeriod must be at most",
        ),
        case(
            PP,
            "gracePeriod beyond Go's duration range",
            "/drain/gracePeriod",
            json!("9999999999999h"),
            "spec.drain.gracePeriod",
        ),
        case(
            PP,
            "negative maxErrors",
            "/rollout/maxErrors",
            json!(-1),
            "spec.rollout.maxErrors",
        ),
        case(
            PP,
            "maxErrors 150%",
            "/rollout/maxErrors",
            json!("150%"),
            "spec.rollout.maxErrors",
        ),
        case(
            PP,
            "topologyKey with spaces",
            "/rollout/topologyKey",
            json!("my zone"),
            "spec.rollout.topologyKey",
        ),
        case(
            PP,
            "soakTime in words",
            "/rollout/soakTime",
            json!("1 day"),
            "spec.rollout.soakTime",
        ),
        case(
            PP,
            "no maintenance windows",
            "/install/maintenanceWindowRefs",
            json!([]),
            "spec.install.maintenanceWindowRefs",
        ),
        case(
            PP,
            "unknown rebootOption",
            "/install/rebootOption",
            json!("Always"),
            "spec.install.rebootOption",
        ),
        case(
            PP,
            "baseline ref not a name",
            "/baselineRefs/0",
            json!("Not_A_Name"),
            "spec.baselineRefs[0]",
        ),
        case(
            PP,
            "historyLimit 0",
            "/historyLimit",
            json!(0),
            "spec.historyLimit",
        ),
        case(
            PP,
            "drain timeout in words",
            "/drain/timeout",
            json!("forever"),
            "spec.drain.timeout",
        ),
        // PatchRun
        case(
            PR,
            "unknown operation",
            "/operation",
            json!("Reboot"),
            "spec.operation",
        ),
        removed(PR, "missing policyRef", "/policyRef", "spec.policyRef"),
        case(
            PR,
            "unknown trigger",
            "/trigger",
            json!("Cron"),
            "spec.trigger",
        ),
        case(
            PR,
            "policyRef not a name",
            "/policyRef",
            json!("Prod Policy"),
            "spec.policyRef",
        ),
        case(
            PR,
            "Preview without a draft baseline",
            "/operation",
            json!("Preview"),
            "spec.preview",
        ),
        case(
            PR,
            "a draft baseline on an Install run",
            "/preview",
            json!({"baseline": {"operatingSystem": "Debian"}}),
            "spec.preview",
        ),
        case(
            PR,
            "a node listed twice",
            "/nodes",
            json!(["node-a", "node-a"]),
            "spec.nodes",
        ),
        case(
            PR,
            "a node subset entry not a name",
            "/nodes",
            json!(["Node A"]),
            "spec.nodes",
        ),
    ]
}

#[tokio::test]
async fn every_invalid_manifest_is_rejected_naming_its_field() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let corpus = invalid_corpus();
    assert!(corpus.len() >= 40, "corpus has {} cases", corpus.len());
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };

    // The valid base of each kind is accepted, so each rejection is due to its one broken rule.
    for kind in [
        "PatchBaseline",
        "MaintenanceWindow",
        "PatchPolicy",
        "PatchRun",
    ] {
        let obj = object(kind, &support::unique_name("valid"), valid_spec(kind));
        dynamic_api(&client, kind)
            .create(&dry_run, &obj)
            .await
            .unwrap_or_else(|e| panic!("valid {kind} rejected: {e}"));
    }

    let mut failures = vec![];
    for c in &corpus {
        let spec = mutate(valid_spec(c.kind), c.pointer, c.value.clone());
        let obj = object(c.kind, &support::unique_name("invalid"), spec);
        match dynamic_api(&client, c.kind).create(&dry_run, &obj).await {
            Ok(_) => failures.push(format!("{} '{}': accepted", c.kind, c.what)),
            Err(kube::Error::Api(status)) => {
                let ok_field = status.message.contains(c.field);
                let ok_message = c.message.is_none_or(|m| status.message.contains(m));
                if status.code != 422 || !ok_field || !ok_message {
                    failures.push(format!(
                        "{} '{}': expected 422 naming {}{}, got {}: {}",
                        c.kind,
                        c.what,
                        c.field,
                        c.message
                            .map(|m| format!(" with '{m}'"))
                            .unwrap_or_default(),
                        status.code,
                        status.message
                    ));
                }
            }
            Err(e) => failures.push(format!("{} '{}': unexpected error {e}", c.kind, c.what)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn patchrun_name_longer_than_a_label_value_is_rejected() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let name = format!("run-{}", "x".repeat(60));
    let err = dynamic_api(&client, "PatchRun")
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &object("PatchRun", &name, valid_spec("PatchRun")),
        )
        .await
        .expect_err("a 64-character run name must be rejected");
    let kube::Error::Api(status) = err else {
        panic!("unexpected error {err}")
    };
    assert!(
        status
            .message
            .contains("metadata.name must be at most 63 characters"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn patchrun_spec_is_immutable() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let api = dynamic_api(&client, "PatchRun");
    let name = support::unique_name("immutable");
    api.create(
        &PostParams::default(),
        &object("PatchRun", &name, valid_spec("PatchRun")),
    )
    .await
    .expect("create run");
    let patch = json!({"spec": {"operation": "Scan"}});
    let err = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("changing a PatchRun spec must be rejected");
    let kube::Error::Api(status) = err else {
        panic!("unexpected error {err}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("spec is immutable"),
        "{}",
        status.message
    );
    // Status may still change.
    let status_patch = json!({"status": {"phase": "Running"}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status_patch))
        .await
        .expect("status stays writable");
    api.delete(&name, &Default::default())
        .await
        .expect("delete run");
}

#[tokio::test]
async fn every_sample_is_accepted() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let dir = support::repo_root().join("config/samples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("config/samples exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "yaml")
            || path.file_name().is_some_and(|n| n == "kustomization.yaml")
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable sample");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("sample is YAML");
        for value in docs {
            if value.is_null() {
                continue;
            }
            let obj: DynamicObject = serde_json::from_value(value).expect("sample is an object");
            let kind = obj.types.as_ref().expect("sample has a kind").kind.clone();
            dynamic_api(&client, &kind)
                .create(
                    &PostParams {
                        dry_run: true,
                        ..Default::default()
                    },
                    &obj,
                )
                .await
                .unwrap_or_else(|e| panic!("{} rejected: {e}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 10, "expected at least 10 samples, found {count}");
}

fn kubectl(args: &[&str]) -> String {
    let out = Command::new(support::tool("kubectl"))
        .arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn kubectl_get_shows_printer_columns_and_explain_shows_docs() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    // One object of each kind so every table prints its header.
    let suffix = support::unique_name("cols");
    let pp = PostParams::default();
    for kind in [
        "PatchBaseline",
        "MaintenanceWindow",
        "PatchPolicy",
        "PatchRun",
    ] {
        dynamic_api(&client, kind)
            .create(
                &pp,
                &object(
                    kind,
                    &format!("{}-{suffix}", kind.to_lowercase()),
                    valid_spec(kind),
                ),
            )
            .await
            .expect("create object");
    }
    dynamic_api(&client, "NodePatchReport")
        .create(
            &pp,
            &object("NodePatchReport", &format!("npr-{suffix}"), json!({})),
        )
        .await
        .expect("create report");

    // The short names (docs/api.md) collide with no widely used CRD (Tekton's `pr`, Karmada's
    // `pp` did); every kind has a Ready column.
    let expected: [(&str, &[&str]); 5] = [
        (
            "npbl",
            &[
                "OS",
                "DEFAULT",
                "RULES",
                "COMPLIANT",
                "NONCOMPLIANT",
                "READY",
                "AGE",
            ],
        ),
        (
            "npmw",
            &["SCHEDULE", "TIMEZONE", "OPEN", "NEXT", "READY", "AGE"],
        ),
        (
            "nppol",
            &[
                "NODES",
                "COMPLIANT",
                "NONCOMPLIANT",
                "PHASE",
                "NEXT WINDOW",
                "READY",
                "AGE",
            ],
        ),
        (
            "nprun",
            &[
                "POLICY",
                "OPERATION",
                "PHASE",
                "READY",
                "REASON",
                "SUCCEEDED",
                "FAILED",
                "TOTAL",
                "START",
                "END",
                "AGE",
            ],
        ),
        (
            "npr",
            &[
                "OS",
                "COMPLIANCE",
                "LEVEL",
                "MISSING",
                "REBOOT",
                "READY",
                "LAST SCAN",
            ],
        ),
    ];
    for (short, columns) in expected {
        let out = kubectl(&["get", short]);
        let header = out.lines().next().unwrap_or_default();
        for col in columns {
            assert!(
                header.contains(col),
                "kubectl get {short}: header {header:?} lacks {col}"
            );
        }
    }
    let all = kubectl(&["get", "npbl,npmw,nppol,nprun,npr"]);
    for kind in [
        "patchbaseline",
        "maintenancewindow",
        "patchpolicy",
        "patchrun",
        "nodepatchreport",
    ] {
        assert!(
            all.contains(&format!("{kind}.nodepatch.dev/")),
            "kubectl get npbl,npmw,nppol,nprun,npr lacks {kind}:\n{all}"
        );
    }
    let category = kubectl(&["get", "nodepatch"]);
    for kind in [
        "patchbaseline",
        "maintenancewindow",
        "patchpolicy",
        "patchrun",
        "nodepatchreport",
    ] {
        assert!(
            category.contains(&format!("{kind}.nodepatch.dev/")),
            "kubectl get nodepatch lacks {kind}:\n{category}"
        );
    }

    // Each kind's top-level description is ours, not kube-derive's placeholder.
    for (kind, says) in [
        (
            "patchbaseline",
            "What may be installed on nodes of one operating system",
        ),
        ("maintenancewindow", "When installs may disrupt nodes"),
        ("patchpolicy", "Where and how fast nodes are patched"),
        ("patchrun", "One execution of a PatchPolicy"),
        ("nodepatchreport", "The patch state of one node"),
    ] {
        // kubectl wraps descriptions: compare with whitespace collapsed.
        let explain = kubectl(&["explain", kind])
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            explain.contains(says) && !explain.contains("Auto-generated"),
            "kubectl explain {kind}:\n{explain}"
        );
    }

    let explain = kubectl(&["explain", "patchpolicy.spec.rollout.maxErrors"]);
    assert!(
        explain.contains("Failed nodes tolerated"),
        "explain output:\n{explain}"
    );

    for kind in [
        "PatchBaseline",
        "MaintenanceWindow",
        "PatchPolicy",
        "PatchRun",
    ] {
        let _ = dynamic_api(&client, kind)
            .delete(
                &format!("{}-{suffix}", kind.to_lowercase()),
                &Default::default(),
            )
            .await;
    }
    let _ = dynamic_api(&client, "NodePatchReport")
        .delete(&format!("npr-{suffix}"), &Default::default())
        .await;
}

/// Alternative patch sources admission accepts: several entries, options, comments, blank
/// lines, flat repositories, on Debian and Ubuntu; `.repo` files on the dnf systems.
#[tokio::test]
async fn alternative_patch_sources_in_the_documented_shape_are_accepted() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    for (os, configuration) in [
        (
            "Ubuntu",
            "# internal mirror\n\ndeb [arch=amd64,arm64 signed-by=/usr/share/keyrings/mirror.gpg] https://mirror.example:8443/ubuntu noble-security main universe\ndeb https://mirror.example/ubuntu noble-updates main\n",
        ),
        (
            "Debian",
            "deb [trusted=yes check-valid-until=no] file:/srv/mirror bookworm-security main",
        ),
        ("Debian", "deb http://mirror.example/flat ./"),
        (
            "Rocky",
            "# internal mirror\n[mirror-baseos]\nname=Mirror BaseOS 9\nbaseurl=https://mirror.example/rocky/9/BaseOS/x86_64/os/\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9\nenabled=1\npriority=10\n\n[mirror-appstream]\nbaseurl = https://mirror.example/rocky/9/AppStream/x86_64/os/\nsslverify=false\nmodule_hotfixes=true\n",
        ),
        (
            "AmazonLinux2023",
            "[al2023-mirror]\nbaseurl=file:///srv/mirror/al2023\ngpgcheck=0",
        ),
    ] {
        let mut spec = valid_spec("PatchBaseline");
        spec["operatingSystem"] = json!(os);
        if !matches!(os, "Ubuntu" | "Debian") {
            // Priority is an apt key; the rpm systems filter by classification.
            spec["approvalRules"][0]["filters"] =
                json!([{"key": "Classification", "values": ["Security"]}]);
        }
        spec["sources"] =
            json!([{"name": "mirror", "products": ["*"], "configuration": configuration}]);
        let obj = object("PatchBaseline", &support::unique_name("sources"), spec);
        dynamic_api(&client, "PatchBaseline")
            .create(&dry_run, &obj)
            .await
            .unwrap_or_else(|e| panic!("{os} {configuration:?} rejected: {e}"));
    }
}

/// Status integers are bounded like the Rust types that read them (u32 counts, non-negative
/// generations): an agent cannot write `counts.failed: 4294967296` into its own report, which
/// the controller could not decode. The largest value the type holds is accepted.
#[tokio::test]
async fn status_integers_beyond_their_rust_types_are_rejected_naming_the_field() {
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let cases: [(&str, Value, &str, &str); 6] = [
        (
            "NodePatchReport",
            json!({}),
            "/counts/failed",
            "status.counts.failed",
        ),
        (
            "NodePatchReport",
            json!({}),
            "/nonCompliantBySeverity/critical",
            "status.nonCompliantBySeverity.critical",
        ),
        (
            "PatchRun",
            valid_spec("PatchRun"),
            "/nodes/failed",
            "status.nodes.failed",
        ),
        (
            "PatchPolicy",
            valid_spec("PatchPolicy"),
            "/nodes/total",
            "status.nodes.total",
        ),
        (
            "PatchBaseline",
            valid_spec("PatchBaseline"),
            "/rules",
            "status.rules",
        ),
        (
            "MaintenanceWindow",
            valid_spec("MaintenanceWindow"),
            "/observedGeneration",
            "status.observedGeneration",
        ),
    ];
    let mut failures = vec![];
    let mut created = vec![];
    for (kind, spec, pointer, field) in cases {
        let api = dynamic_api(&client, kind);
        let name = support::unique_name("status-bounds");
        api.create(&PostParams::default(), &object(kind, &name, spec))
            .await
            .unwrap_or_else(|e| panic!("create {kind}: {e}"));
        created.push((kind, name.clone()));
        let (parent, last) = pointer.rsplit_once('/').expect("pointer");
        let status_with = |value: Value| {
            let mut status = json!({});
            let mut at = &mut status;
            for part in parent.split('/').filter(|p| !p.is_empty()) {
                at = &mut at[part];
            }
            at[last] = value;
            json!({ "status": status })
        };
        let bad = if field.ends_with("observedGeneration") {
            json!(-1)
        } else {
            json!(4_294_967_296_i64)
        };
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(status_with(bad)),
            )
            .await
        {
            Ok(_) => failures.push(format!("{kind} {field}: out-of-range value accepted")),
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(field) => {}
            Err(e) => failures.push(format!("{kind} {field}: expected 422 naming it, got {e}")),
        }
        let largest = if field.ends_with("observedGeneration") {
            json!(i64::MAX)
        } else {
            json!(u32::MAX)
        };
        if let Err(e) = api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(status_with(largest)),
            )
            .await
        {
            failures.push(format!(
                "{kind} {field}: the type's largest value refused: {e}"
            ));
        }
    }
    for (kind, name) in created {
        let _ = dynamic_api(&client, kind)
            .delete(&name, &Default::default())
            .await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
