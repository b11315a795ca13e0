//! A thin stand-in for the Kubernetes API server, for the Kubernetes-mode
//! tests (no real API server can run on the test machines).
//!
//! It speaks the parts of the real protocol that `sextant serve --kube`
//! uses, over plain HTTP on 127.0.0.1 without authentication:
//!
//! - list: `GET /api/v1/{plural}`, `/apis/{group}/{version}/{plural}` and
//!   their `/namespaces/{ns}/` forms, answering `{kind: List, metadata:
//!   {resourceVersion}, items}` (every item with its own resourceVersion);
//! - watch: the same paths with `?watch=true` (or `1`) and
//!   `resourceVersion=N`: a chunked stream of one JSON event per line,
//!   `ADDED`/`MODIFIED`/`DELETED` for every change after `N`, and a
//!   `BOOKMARK` every second; a `resourceVersion` older than the last
//!   [`FakeKube::expire_watches`] gets an `ERROR` event with a 410 Gone
//!   Status (what a real API server sends after compaction);
//! - `GET`/`POST` of single objects (Secrets), with 404 and 409
//!   AlreadyExists Status answers;
//! - `PATCH .../{name}/status` (JSON merge patch of `status`), recorded for
//!   assertions; it changes the object and emits `MODIFIED`, as a real
//!   status write does.
//!
//! It does not do label or field selectors, pagination, authentication,
//! admission, defaulting or schema validation.

#![allow(dead_code)]

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// One change, as a watch delivers it.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    collection: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    /// Watches from a resourceVersion below this get 410 Gone.
    floor: u64,
    /// Objects by (collection path, namespace, name).
    objects: BTreeMap<(String, String, String), Value>,
    log: Vec<Change>,
    patches: Vec<(String, Value)>,
    requests: Vec<String>,
    /// Names whose next GET answers 404 (see [`FakeKube::hide_next_get`]).
    hidden: Vec<String>,
    /// apiVersion and kind of each collection (for BOOKMARK objects).
    kinds: HashMap<String, (String, String)>,
}

struct Shared {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Change>,
    /// Ends every open watch stream.
    kill: broadcast::Sender<()>,
}

/// The fake API server, serving until dropped.
pub struct FakeKube {
    /// Where it listens (127.0.0.1, a port from the OS).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `/api/v1` or `/apis/{group}/{version}` for an apiVersion.
fn api_prefix(api_version: &str) -> String {
    if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    }
}

/// The resource (plural) name of a kind, as Kubernetes derives it.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{lower}s"),
    }
}

impl FakeKube {
    /// Starts the server on a free port of 127.0.0.1.
    pub async fn start() -> FakeKube {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                rv: 100,
                ..Inner::default()
            }),
            changes: broadcast::channel(1024).0,
            kill: broadcast::channel(4).0,
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeKube { addr, shared, task }
    }

    /// Writes a kubeconfig pointing at this server (no auth) into `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
                self.addr
            ),
        )
        .unwrap();
        path
    }

    /// Creates or replaces an object (given as JSON with apiVersion, kind and
    /// metadata) and emits ADDED or MODIFIED. Sets resourceVersion, uid and
    /// generation (bumped when anything but metadata and status changes).
    pub fn apply(&self, mut object: Value) {
        let (collection, namespace, name) = locate(&object);
        let mut inner = self.shared.inner.lock().unwrap();
        inner.rv += 1;
        let rv = inner.rv;
        let key = (collection.clone(), namespace.clone(), name.clone());
        let previous = inner.objects.get(&key).cloned();
        let generation = match &previous {
            None => 1,
            Some(old) => {
                let old_gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
                if body_of(old) == body_of(&object) {
                    old_gen
                } else {
                    old_gen + 1
                }
            }
        };
        if let Some(old) = &previous {
            if object.get("status").is_none() {
                if let Some(status) = old.get("status") {
                    object["status"] = status.clone();
                }
            }
        }
        let meta = &mut object["metadata"];
        meta["namespace"] = json!(namespace);
        meta["resourceVersion"] = json!(rv.to_string());
        meta["uid"] = json!(format!("uid-{collection}-{namespace}-{name}"));
        meta["generation"] = json!(generation);
        let kind = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        inner.objects.insert(key, object.clone());
        let types = (
            object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            object["kind"].as_str().unwrap_or_default().to_string(),
        );
        inner.kinds.insert(collection.clone(), types);
        self.emit(&mut inner, rv, collection, namespace, kind, object);
    }

    /// Deletes an object and emits DELETED.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let collection = format!("{}/{}", api_prefix(api_version), plural(kind));
        let mut inner = self.shared.inner.lock().unwrap();
        let key = (collection.clone(), namespace.to_string(), name.to_string());
        let Some(mut object) = inner.objects.remove(&key) else {
            panic!("fake kube: no {kind} {namespace}/{name} to delete");
        };
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.emit(
            &mut inner,
            rv,
            collection,
            namespace.to_string(),
            "DELETED",
            object,
        );
    }

    fn emit(
        &self,
        inner: &mut Inner,
        rv: u64,
        collection: String,
        namespace: String,
        kind: &'static str,
        object: Value,
    ) {
        let change = Change {
            rv,
            collection,
            namespace,
            kind,
            object,
        };
        inner.log.push(change.clone());
        let _ = self.shared.changes.send(change);
    }

    /// Simulates etcd compaction: every resourceVersion seen so far becomes
    /// too old, and every open watch is closed. Watchers reconnecting from
    /// their last resourceVersion get 410 Gone and must list again.
    pub fn expire_watches(&self) {
        {
            let mut inner = self.shared.inner.lock().unwrap();
            inner.rv += 1;
            inner.floor = inner.rv;
        }
        let _ = self.shared.kill.send(());
    }

    /// The next GET of an object called `name` answers 404 even if it
    /// exists, as when two clients race to create it.
    pub fn hide_next_get(&self, name: &str) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .hidden
            .push(name.to_string());
    }

    /// Closes every open watch (as an API server restart or a load
    /// balancer timeout does) without expiring anything: watchers resume
    /// from their last resourceVersion and get what they missed.
    pub fn close_watches(&self) {
        let _ = self.shared.kill.send(());
    }

    /// Status PATCHes received: (path, body), in order.
    pub fn patches(&self) -> Vec<(String, Value)> {
        self.shared.inner.lock().unwrap().patches.clone()
    }

    /// Requests received, as `METHOD path?query`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    /// The stored object, if any.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let collection = format!("{}/{}", api_prefix(api_version), plural(kind));
        let inner = self.shared.inner.lock().unwrap();
        inner
            .objects
            .get(&(collection, namespace.to_string(), name.to_string()))
            .cloned()
    }
}

/// Everything but metadata and status: what bumps `generation`.
fn body_of(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    object
}

/// (collection path, namespace, name) of an object.
fn locate(object: &Value) -> (String, String, String) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    (
        format!("{}/{}", api_prefix(api_version), plural(kind)),
        namespace,
        name,
    )
}

/// A parsed request path.
struct Target {
    collection: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (format!("/api/{version}"), rest),
        ["apis", group, version, rest @ ..] => (format!("/apis/{group}/{version}"), rest),
        _ => return None,
    };
    let target = |plural: &str, namespace: Option<&str>, name: Option<&str>, status| Target {
        collection: format!("{prefix}/{plural}"),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        status,
    };
    Some(match rest {
        [plural] => target(plural, None, None, false),
        ["namespaces", ns, plural] => target(plural, Some(ns), None, false),
        ["namespaces", ns, plural, name] => target(plural, Some(ns), Some(name), false),
        ["namespaces", ns, plural, name, "status"] => target(plural, Some(ns), Some(name), true),
        _ => return None,
    })
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    shared.inner.lock().unwrap().requests.push(format!(
        "{method} {}",
        uri.path_and_query().map_or("", |p| p.as_str())
    ));
    let Some(target) = parse_path(uri.path()) else {
        return status(404, "NotFound", format!("no route for {}", uri.path()));
    };
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    match (method, &target.name, target.status) {
        (Method::GET, None, _) if watch => watch_stream(shared, target, &query),
        (Method::GET, None, _) => list(&shared, &target),
        (Method::GET, Some(name), _) => {
            let mut inner = shared.inner.lock().unwrap();
            if let Some(i) = inner.hidden.iter().position(|h| h == name) {
                inner.hidden.remove(i);
                return status(
                    404,
                    "NotFound",
                    format!("{} {name} not found", target.collection),
                );
            }
            let key = (
                target.collection.clone(),
                target.namespace.clone().unwrap_or_default(),
                name.clone(),
            );
            match inner.objects.get(&key) {
                Some(object) => Json(object.clone()).into_response(),
                None => status(
                    404,
                    "NotFound",
                    format!("{} {name} not found", target.collection),
                ),
            }
        }
        (Method::POST, None, false) => create(&shared, &target, &body),
        (Method::PATCH, Some(name), true) => {
            patch_status(&shared, &target, name, &body, uri.path())
        }
        (method, _, _) => status(
            405,
            "MethodNotAllowed",
            format!("{method} {} is not served by the fake", uri.path()),
        ),
    }
}

fn list(shared: &Shared, target: &Target) -> Response {
    let inner = shared.inner.lock().unwrap();
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|((c, ns, _), _)| {
            *c == target.collection && target.namespace.as_ref().is_none_or(|n| n == ns)
        })
        .map(|(_, o)| o.clone())
        .collect();
    Json(json!({
        "apiVersion": "v1", "kind": "List",
        "metadata": {"resourceVersion": inner.rv.to_string()},
        "items": items,
    }))
    .into_response()
}

fn create(shared: &Shared, target: &Target, body: &[u8]) -> Response {
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "body is not JSON".into());
    };
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut inner = shared.inner.lock().unwrap();
    let key = (target.collection.clone(), namespace.clone(), name.clone());
    if inner.objects.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", target.collection),
        );
    }
    inner.rv += 1;
    let rv = inner.rv;
    object["metadata"]["namespace"] = json!(namespace);
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    inner.objects.insert(key, object.clone());
    let change = Change {
        rv,
        collection: target.collection.clone(),
        namespace,
        kind: "ADDED",
        object: object.clone(),
    };
    inner.log.push(change.clone());
    let _ = shared.changes.send(change);
    (StatusCode::CREATED, Json(object)).into_response()
}

fn patch_status(shared: &Shared, target: &Target, name: &str, body: &[u8], path: &str) -> Response {
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "body is not JSON".into());
    };
    let mut inner = shared.inner.lock().unwrap();
    inner.patches.push((path.to_string(), patch.clone()));
    let namespace = target.namespace.clone().unwrap_or_default();
    let key = (
        target.collection.clone(),
        namespace.clone(),
        name.to_string(),
    );
    let Some(mut object) = inner.objects.get(&key).cloned() else {
        return status(
            404,
            "NotFound",
            format!("{} {name} not found", target.collection),
        );
    };
    if let Some(new_status) = patch.get("status") {
        merge(&mut object["status"], new_status);
    }
    inner.rv += 1;
    let rv = inner.rv;
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    inner.objects.insert(key, object.clone());
    let change = Change {
        rv,
        collection: target.collection.clone(),
        namespace,
        kind: "MODIFIED",
        object: object.clone(),
    };
    inner.log.push(change.clone());
    let _ = shared.changes.send(change);
    Json(object).into_response()
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let map = target.as_object_mut().unwrap();
            for (k, v) in fields {
                if v.is_null() {
                    map.remove(k);
                } else {
                    merge(map.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn watch_stream(shared: Arc<Shared>, target: Target, query: &HashMap<String, String>) -> Response {
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::convert::Infallible>>(64);
    let line = |event: Value| Ok(bytes::Bytes::from(format!("{event}\n")));
    let collection = target.collection.clone();
    let matches = move |c: &Change| {
        c.collection == target.collection
            && target.namespace.as_ref().is_none_or(|n| *n == c.namespace)
    };
    let mut live = shared.changes.subscribe();
    let mut kill = shared.kill.subscribe();
    let (backlog, floor) = {
        let inner = shared.inner.lock().unwrap();
        let backlog: Vec<Change> = inner
            .log
            .iter()
            .filter(|c| c.rv > from && matches(c))
            .cloned()
            .collect();
        (backlog, inner.floor)
    };
    tokio::spawn(async move {
        if from != 0 && from < floor {
            let gone = json!({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {from} ({floor})"),
                "reason": "Expired", "code": 410,
            }});
            let _ = tx.send(line(gone)).await;
            return;
        }
        let mut sent = from;
        for change in backlog {
            sent = change.rv;
            let event = json!({"type": change.kind, "object": change.object});
            if tx.send(line(event)).await.is_err() {
                return;
            }
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                change = live.recv() => match change {
                    Ok(change) if change.rv > sent && matches(&change) => {
                        sent = change.rv;
                        let event = json!({"type": change.kind, "object": change.object});
                        if tx.send(line(event)).await.is_err() { return; }
                    }
                    Ok(_) => {}
                    // Lagged or closed: end the watch; the client resumes from `sent`.
                    Err(_) => return,
                },
                _ = kill.recv() => return,
                _ = tick.tick(), if bookmarks => {
                    // Every change of this watch up to `sent` has been sent.
                    let (api_version, kind) = shared.inner.lock().unwrap().kinds.get(&collection).cloned().unwrap_or_default();
                    let event = json!({"type": "BOOKMARK", "object": {
                        "apiVersion": api_version, "kind": kind,
                        "metadata": {"resourceVersion": sent.to_string()},
                    }});
                    if tx.send(line(event)).await.is_err() { return; }
                }
            }
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap()
}
