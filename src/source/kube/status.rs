//! `status.conditions` of our CRs: the `Accepted` condition computed from
//! the diagnostics of each object, written with a merge PATCH to `/status`.
//!
//! A condition is written only when it differs (in status, reason, message or
//! observedGeneration) from what the object already carries or what was last
//! written, at most one write per `min_interval`. The watcher ignores the
//! resulting events (they touch only `status` and `resourceVersion`), so a
//! status write never triggers a push.
//!
//! Only one replica should write status: `--kube-status-writer=false` on
//! the others (no Lease-based leader election is built).

use crate::diagnostic::Diagnostic;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::watch;

/// The condition type Sextant writes.
pub const ACCEPTED: &str = "Accepted";
/// Reason of `Accepted=True`.
pub const REASON_ACCEPTED: &str = "Accepted";
/// Reason of `Accepted=False`: the object failed validation.
pub const REASON_INVALID: &str = "Invalid";
/// Longest message written, in bytes (Kubernetes allows 32 KiB).
const MAX_MESSAGE: usize = 4096;

/// One entry of `status.conditions`, as Kubernetes' `metav1.Condition`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Accepted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// `Accepted` or `Invalid`.
    pub reason: String,
    /// What is wrong, naming each field path (`spec.http[0].route[0].weight: ...`).
    pub message: String,
    /// `metadata.generation` of the object the condition is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed, RFC 3339 in whole seconds (UTC).
    #[serde(default)]
    pub last_transition_time: String,
}

impl Condition {
    /// The `Accepted` condition inside an object's `status` value, if any.
    pub fn accepted_in(status: &Value) -> Option<Condition> {
        status
            .get("conditions")?
            .as_array()?
            .iter()
            .filter_map(|c| serde_json::from_value::<Condition>(c.clone()).ok())
            .find(|c| c.type_ == ACCEPTED)
    }

    /// Equal in everything but `lastTransitionTime`.
    pub fn same_as(&self, other: &Condition) -> bool {
        self.type_ == other.type_
            && self.status == other.status
            && self.reason == other.reason
            && self.message == other.message
            && self.observed_generation == other.observed_generation
    }
}

/// Where an object's status goes, and what it carried when last seen.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusTarget {
    /// The object's type.
    pub api_resource: ApiResource,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.generation` of the version last seen.
    pub generation: Option<i64>,
    /// The `Accepted` condition it carried when last seen.
    pub current: Option<Condition>,
}

/// The `Accepted` condition (without `lastTransitionTime`) of the object at
/// `origin` at `generation`, from `diagnostics` (those whose file is
/// `origin` count): `False`/`Invalid` listing each error as
/// `field: message` when there is an error, else `True`/`Accepted`
/// (listing warnings, if any).
pub fn accepted(origin: &str, generation: Option<i64>, diagnostics: &[Diagnostic]) -> Condition {
    let mine: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.file.as_deref() == Some(origin))
        .collect();
    let describe = |d: &&Diagnostic| {
        if d.field.is_empty() {
            d.message.clone()
        } else {
            format!("{}: {}", d.field, d.message)
        }
    };
    let errors: Vec<String> = mine.iter().filter(|d| d.is_error()).map(describe).collect();
    let warnings: Vec<String> = mine
        .iter()
        .filter(|d| !d.is_error())
        .map(describe)
        .collect();
    let (status, reason, message) = if !errors.is_empty() {
        ("False", REASON_INVALID, errors.join("; "))
    } else if !warnings.is_empty() {
        (
            "True",
            REASON_ACCEPTED,
            format!("accepted with warnings: {}", warnings.join("; ")),
        )
    } else {
        ("True", REASON_ACCEPTED, "accepted".to_string())
    };
    Condition {
        type_: ACCEPTED.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: truncate(message),
        observed_generation: generation,
        last_transition_time: String::new(),
    }
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

/// What should be written: per origin, the target and its condition.
type Desired = BTreeMap<String, (StatusTarget, Condition)>;

/// Handle of the background task that writes conditions; dropping it stops
/// the task after its current write.
pub struct StatusWriter {
    desired: watch::Sender<Desired>,
}

impl StatusWriter {
    /// Starts the writer on `client`, writing at most once per `min_interval`.
    /// Must be called inside a tokio runtime.
    pub fn spawn(client: Client, min_interval: Duration) -> Self {
        let (desired, rx) = watch::channel(Desired::new());
        tokio::spawn(write_loop(client, rx, min_interval));
        StatusWriter { desired }
    }

    /// Sets what every target's condition should be, from the current
    /// diagnostics (see [`accepted`]). Returns at once; writes happen in the
    /// background.
    pub fn update(&self, targets: &BTreeMap<String, StatusTarget>, diagnostics: &[Diagnostic]) {
        let desired: Desired = targets
            .iter()
            .map(|(origin, target)| {
                let condition = accepted(origin, target.generation, diagnostics);
                (origin.clone(), (target.clone(), condition))
            })
            .collect();
        self.desired.send_if_modified(|current| {
            let changed = *current != desired;
            *current = desired;
            changed
        });
    }
}

/// Writes what differs from what was last written (or seen), then waits for
/// a change; failed writes are tried again after 5 s.
async fn write_loop(client: Client, mut rx: watch::Receiver<Desired>, min_interval: Duration) {
    let mut written: HashMap<String, Condition> = HashMap::new();
    let mut retry = false;
    loop {
        if retry {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        } else if rx.changed().await.is_err() {
            return;
        }
        let desired = rx.borrow_and_update().clone();
        written.retain(|origin, _| desired.contains_key(origin));
        retry = false;
        for (origin, (target, mut condition)) in desired {
            let last = written.get(&origin).or(target.current.as_ref());
            if last.is_some_and(|l| l.same_as(&condition)) {
                continue;
            }
            condition.last_transition_time = match last {
                Some(l) if l.status == condition.status && !l.last_transition_time.is_empty() => {
                    l.last_transition_time.clone()
                }
                _ => now_rfc3339(),
            };
            match patch(&client, &target, &condition).await {
                Ok(()) => {
                    tracing::info!(
                        object = origin,
                        status = condition.status,
                        reason = condition.reason,
                        "wrote status condition Accepted"
                    );
                    written.insert(origin, condition);
                }
                Err(err) => {
                    tracing::warn!(object = origin, "cannot write status: {err}");
                    retry = true;
                }
            }
            tokio::time::sleep(min_interval).await;
        }
    }
}

/// Merge-PATCHes `status.conditions` of `target` to `[condition]`.
async fn patch(client: &Client, target: &StatusTarget, condition: &Condition) -> kube::Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &target.namespace, &target.api_resource);
    let body = serde_json::json!({ "status": { "conditions": [condition] } });
    api.patch_status(&target.name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map(|_| ())
}

/// The current time as RFC 3339 in whole seconds, UTC (`2026-01-02T03:04:05Z`).
fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
