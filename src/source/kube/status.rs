//! `status.conditions` of our CRs, written with a merge PATCH to `/status`:
//! - `Accepted`, computed from the diagnostics of each object (see [`accepted`]);
//! - `Programmed`, computed from the NACKs of the connected proxies that
//!   were traced back to the object (see [`programmed`]).
//!
//! The conditions are written only when one differs (in status, reason,
//! message or observedGeneration) from what the object already carries or
//! what was last written, at most one write per `min_interval`. The watcher
//! ignores the resulting events (they touch only `status` and
//! `resourceVersion`), so a status write never triggers a push.
//!
//! Only one replica should write status: `--kube-status-writer=false` on
//! the others (no Lease-based leader election is built).

use crate::diagnostic::Diagnostic;
use crate::model::ObjectKey;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::watch;

/// The condition type about validation.
pub const ACCEPTED: &str = "Accepted";
/// The condition type about the proxies taking what was derived from the object.
pub const PROGRAMMED: &str = "Programmed";
/// Reason of `Accepted=True`.
pub const REASON_ACCEPTED: &str = "Accepted";
/// Reason of `Accepted=False`, and of `Programmed=False` when the object
/// failed validation (so this generation was not sent to proxies).
pub const REASON_INVALID: &str = "Invalid";
/// Reason of `Programmed=True`.
pub const REASON_PROGRAMMED: &str = "Programmed";
/// Reason of `Programmed=False` when a proxy NACKed a resource derived from the object.
pub const REASON_REJECTED: &str = "Rejected";
/// Longest message written, in bytes (Kubernetes allows 32 KiB).
const MAX_MESSAGE: usize = 4096;

/// One entry of `status.conditions`, as Kubernetes' `metav1.Condition`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Accepted` or `Programmed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// `Accepted` or `Invalid` (of `Accepted`); `Programmed`, `Rejected`
    /// or `Invalid` (of `Programmed`).
    pub reason: String,
    /// What is wrong, naming each field path (`spec.http[0].route[0].weight: ...`)
    /// or each proxy that rejected a derived resource, with Envoy's message.
    pub message: String,
    /// `metadata.generation` of the object the condition is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed, RFC 3339 in whole seconds (UTC).
    #[serde(default)]
    pub last_transition_time: String,
}

impl Condition {
    /// The conditions inside an object's `status` value that Sextant
    /// writes (`Accepted`, `Programmed`), in that order; those missing or
    /// malformed are left out.
    pub fn ours_in(status: &Value) -> Vec<Condition> {
        let all: Vec<Condition> = status
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| serde_json::from_value::<Condition>(c.clone()).ok())
            .collect();
        [ACCEPTED, PROGRAMMED]
            .iter()
            .filter_map(|t| all.iter().find(|c| c.type_ == *t).cloned())
            .collect()
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
    /// The conditions of ours it carried when last seen (see [`Condition::ours_in`]).
    pub current: Vec<Condition>,
}

impl StatusTarget {
    /// Whether `key` names this object (same kind, namespace and name; the
    /// API group is not compared, so an object of Istio's group with the
    /// same kind and name would count too).
    pub fn is(&self, key: &ObjectKey) -> bool {
        key.kind.as_str() == self.api_resource.kind
            && key.namespace == self.namespace
            && key.name == self.name
    }
}

/// A connected proxy's latest answer of one type that was a NACK, as the
/// status writer sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyNack {
    /// The proxy's node id.
    pub proxy: String,
    /// The rejected type, short (`CDS`, `RDS`, ...).
    pub type_name: String,
    /// Envoy's `error_detail` message, trimmed.
    pub message: String,
    /// The objects the rejected resources were traced back to.
    pub objects: Vec<ObjectKey>,
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

/// The `Programmed` condition (without `lastTransitionTime`) of `target`,
/// given its `Accepted` condition and every current NACK:
/// - `False`/`Rejected` when some NACK was traced back to it; the message
///   lists, per rejected type and Envoy message, the proxies that sent it:
///   `RDS rejected by client.default, other.default: regex '...' RE2 program size ...`
///   (`; ` between groups);
/// - else `False`/`Invalid` when `accepted` is `False` (this generation
///   was not sent; the last valid one, if any, stays served);
/// - else `True`/`Programmed`: no connected proxy's latest answer rejected
///   resources derived from it. A proxy stays counted as rejecting until it
///   ACKs a later response, as in `sextant proxy-status`.
pub fn programmed(target: &StatusTarget, accepted: &Condition, nacks: &[ProxyNack]) -> Condition {
    let mut groups: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for nack in nacks
        .iter()
        .filter(|n| n.objects.iter().any(|o| target.is(o)))
    {
        groups
            .entry((nack.type_name.as_str(), nack.message.as_str()))
            .or_default()
            .push(nack.proxy.as_str());
    }
    let (status, reason, message) = if !groups.is_empty() {
        let parts: Vec<String> = groups
            .into_iter()
            .map(|((type_name, message), mut proxies)| {
                proxies.sort_unstable();
                proxies.dedup();
                format!("{type_name} rejected by {}: {message}", proxies.join(", "))
            })
            .collect();
        ("False", REASON_REJECTED, parts.join("; "))
    } else if accepted.status != "True" {
        (
            "False",
            REASON_INVALID,
            "not sent to proxies: this generation failed validation (see Accepted); the last valid one, if any, stays served".to_string(),
        )
    } else {
        (
            "True",
            REASON_PROGRAMMED,
            "no connected proxy rejected the resources derived from it".to_string(),
        )
    };
    Condition {
        type_: PROGRAMMED.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: truncate(message),
        observed_generation: target.generation,
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

/// Per origin of our CRs in the store: where its status goes and its
/// `Accepted` condition.
pub type AcceptedByOrigin = BTreeMap<String, (StatusTarget, Condition)>;

/// Where the status writer learns about NACKs: a receiver that changes
/// whenever a proxy answers or goes away, and a function returning every
/// current NACK (in `serve`, both from the xDS server's registry).
pub struct NackFeed {
    /// Changes after every ACK, NACK or stream end.
    pub changes: watch::Receiver<u64>,
    /// Every connected proxy's current NACKs; called on the writer task,
    /// after a change, at most once per `min_interval`.
    pub current: Box<dyn Fn() -> Vec<ProxyNack> + Send + Sync>,
}

/// Handle of the background task that writes conditions; dropping it stops
/// the task after its current write.
pub struct StatusWriter {
    accepted: watch::Sender<AcceptedByOrigin>,
}

impl StatusWriter {
    /// Starts the writer on `client`, writing at most once per
    /// `min_interval`, with `Programmed` from `nacks`. Must be called
    /// inside a tokio runtime.
    pub fn spawn(client: Client, min_interval: Duration, nacks: NackFeed) -> Self {
        let (accepted, rx) = watch::channel(AcceptedByOrigin::new());
        tokio::spawn(write_loop(client, rx, nacks, min_interval));
        StatusWriter { accepted }
    }

    /// Sets the targets and their `Accepted` conditions from the current
    /// diagnostics (see [`accepted`]). Returns at once; writes happen in the
    /// background.
    pub fn update(&self, targets: &BTreeMap<String, StatusTarget>, diagnostics: &[Diagnostic]) {
        let desired: AcceptedByOrigin = targets
            .iter()
            .map(|(origin, target)| {
                let condition = accepted(origin, target.generation, diagnostics);
                (origin.clone(), (target.clone(), condition))
            })
            .collect();
        self.accepted.send_if_modified(|current| {
            let changed = *current != desired;
            *current = desired;
            changed
        });
    }
}

/// The conditions to write, per origin: `[Accepted, Programmed]`.
pub fn desired(
    accepted: &AcceptedByOrigin,
    nacks: &[ProxyNack],
) -> BTreeMap<String, Vec<Condition>> {
    accepted
        .iter()
        .map(|(origin, (target, accepted))| {
            let programmed = programmed(target, accepted, nacks);
            (origin.clone(), vec![accepted.clone(), programmed])
        })
        .collect()
}

/// `conditions` with each `lastTransitionTime` taken from the condition of
/// the same type in `last` when its status is unchanged, else `now`; `None`
/// when every condition is the same as in `last` (nothing to write).
pub fn to_write(conditions: &[Condition], last: &[Condition], now: &str) -> Option<Vec<Condition>> {
    let unchanged = conditions.len() == last.len()
        && conditions.iter().all(|c| last.iter().any(|l| l.same_as(c)));
    if unchanged {
        return None;
    }
    Some(
        conditions
            .iter()
            .map(|c| {
                let previous = last.iter().find(|l| l.type_ == c.type_);
                let last_transition_time = match previous {
                    Some(l) if l.status == c.status && !l.last_transition_time.is_empty() => {
                        l.last_transition_time.clone()
                    }
                    _ => now.to_string(),
                };
                Condition {
                    last_transition_time,
                    ..c.clone()
                }
            })
            .collect(),
    )
}

/// Writes what differs from what was last written (or seen), then waits for
/// a change of the targets or of the NACKs; failed writes are tried again
/// after 5 s.
async fn write_loop(
    client: Client,
    mut rx: watch::Receiver<AcceptedByOrigin>,
    mut nacks: NackFeed,
    min_interval: Duration,
) {
    let mut written: HashMap<String, Vec<Condition>> = HashMap::new();
    let mut retry = false;
    // Without NACK changes (the sender gone), wait for target changes only.
    let mut nacks_open = true;
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            changed = nacks.changes.changed(), if nacks_open => {
                if changed.is_err() {
                    nacks_open = false;
                    continue;
                }
                // Answers come in bursts (one per type and proxy after a
                // push): look at them once per interval.
                tokio::time::sleep(min_interval).await;
            }
            _ = tokio::time::sleep(Duration::from_secs(5)), if retry => {}
        }
        let accepted = rx.borrow_and_update().clone();
        nacks.changes.borrow_and_update();
        let current = (nacks.current)();
        written.retain(|origin, _| accepted.contains_key(origin));
        retry = false;
        for (origin, conditions) in desired(&accepted, &current) {
            let Some((target, _)) = accepted.get(&origin) else {
                continue;
            };
            let last = written.get(&origin).unwrap_or(&target.current);
            let Some(conditions) = to_write(&conditions, last, &now_rfc3339()) else {
                continue;
            };
            match patch(&client, target, &conditions).await {
                Ok(()) => {
                    for c in &conditions {
                        tracing::info!(
                            object = origin,
                            condition = c.type_,
                            status = c.status,
                            reason = c.reason,
                            "wrote status condition"
                        );
                    }
                    written.insert(origin, conditions);
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

/// Merge-PATCHes `status.conditions` of `target` to `conditions` (a merge
/// patch replaces the whole list; Sextant owns every condition in it).
async fn patch(
    client: &Client,
    target: &StatusTarget,
    conditions: &[Condition],
) -> kube::Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &target.namespace, &target.api_resource);
    let body = serde_json::json!({ "status": { "conditions": conditions } });
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

#[cfg(test)]
mod tests;
