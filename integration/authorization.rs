//! End to end: AuthorizationPolicy enforced by B's sidecar on mutual TLS
//! identities. A (service account a-sa) and C (c-sa) call service `b`:
//! ALLOW by principal lets A in and keeps C out with 403; a DENY on a path
//! wins over the ALLOW; edits apply without a restart; a policy that fails
//! validation fails closed (denies) for the workloads it selects, with an
//! error naming its field, while the other policies stay enforced.

use crate::harness;

use harness::*;
use std::time::Duration;

const A_IP: &str = "127.0.5.1";
const B_IP: &str = "127.0.5.2";
const C_IP: &str = "127.0.5.3";

fn world(b_app: &Upstream, b_inbound: u16) -> String {
    [
        meshed_service_yaml("b", B_IP, b_app, b_inbound),
        meshed_client_yaml("a", A_IP),
        meshed_client_yaml("c", C_IP),
    ]
    .join("---\n")
}

const ALLOW_A: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-a, namespace: default}
spec:
  selector: {matchLabels: {app: b}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/a-sa"]}}]
"#;

const DENY_ADMIN: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector: {matchLabels: {app: b}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
"#;

const BROKEN: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: broken, namespace: default}
spec:
  selector: {matchLabels: {app: b}}
  action: ALLOW
  rules:
  - from: [{source: {ipBlocks: ["10.0.0.0/33"]}}]
"#;

/// The status of `GET path` to `b` through A's outbound listener, with the
/// path sent byte for byte (HTTP clients normalize it themselves).
async fn raw_status(envoy: &Envoy, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(envoy.outbound)
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_policies_allow_deny_and_fail_closed() {
    let work = tempfile::tempdir().unwrap();
    let b_app = Upstream::start(work.path(), B_IP, "b", "v1");
    let b_inbound = free_port();
    let config = ConfigDir::new();
    config.write("world.yaml", &world(&b_app, b_inbound));
    let sextant = Sextant::start(work.path(), config.path()).await;
    let a = Envoy::start_meshed(work.path(), &sextant, "a", A_IP, free_port()).await;
    let c = Envoy::start_meshed(work.path(), &sextant, "c", C_IP, free_port()).await;
    let _b = Envoy::start_meshed(work.path(), &sextant, "b", B_IP, b_inbound).await;
    a.wait_until_serving("b").await;
    c.wait_until_serving("b").await;

    // ALLOW by principal: A in, C out with 403.
    config.write("allow-a.yaml", ALLOW_A);
    wait_for(Duration::from_secs(10), "C to be refused", || async {
        (c.get("b", "/", &[]).await.0 == 403).then_some(())
    })
    .await;
    assert_eq!(a.get("b", "/", &[]).await.0, 200);
    assert_eq!(a.get("b", "/admin/users", &[]).await.0, 200);

    // DENY on a path wins over the ALLOW, without a restart.
    config.write("deny-admin.yaml", DENY_ADMIN);
    wait_for(Duration::from_secs(10), "/admin to be denied", || async {
        (a.get("b", "/admin/users", &[]).await.0 == 403).then_some(())
    })
    .await;
    assert_eq!(a.get("b", "/", &[]).await.0, 200);
    assert_eq!(c.get("b", "/", &[]).await.0, 403);
    // Paths are normalized before policies see them: no dodging the DENY.
    for path in [
        "/./admin/users",
        "/x/../admin/users",
        "//admin/users",
        "/%61dmin/users",
    ] {
        assert_eq!(raw_status(&a, path).await, 403, "{path}");
    }

    // A policy that fails validation denies everything on B, with an error
    // naming its field; removing it restores the others' decisions.
    config.write("broken.yaml", BROKEN);
    wait_for(
        Duration::from_secs(10),
        "the broken policy to fail closed",
        || async { (a.get("b", "/", &[]).await.0 == 403).then_some(()) },
    )
    .await;
    let errors = sextant.admin_json("/debug/config_errors").await.to_string();
    assert!(
        errors.contains("AuthorizationPolicy default/broken") && errors.contains("ipBlocks[0]"),
        "{errors}"
    );
    config.remove("broken.yaml");
    wait_for(Duration::from_secs(10), "A to be allowed again", || async {
        (a.get("b", "/", &[]).await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(c.get("b", "/", &[]).await.0, 403);
    assert_eq!(a.get("b", "/admin/x", &[]).await.0, 403);

    // remoteIpBlocks judge the original client (X-Forwarded-For), not the
    // sidecar the connection comes from.
    config.write("deny-proxied.yaml", DENY_ORIGINAL_CLIENTS);
    let forwarded = [("x-forwarded-for", "198.51.100.7")];
    wait_for(
        Duration::from_secs(10),
        "requests forwarded for 198.51.100.7 to be denied",
        || async { (a.get("b", "/", &forwarded).await.0 == 403).then_some(()) },
    )
    .await;
    assert_eq!(a.get("b", "/", &[]).await.0, 200);
    assert_eq!(
        a.get("b", "/", &[("x-forwarded-for", "198.51.100.9")])
            .await
            .0,
        200
    );
}

const DENY_ORIGINAL_CLIENTS: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-proxied, namespace: default}
spec:
  selector: {matchLabels: {app: b}}
  action: DENY
  rules:
    - from:
        - source: {remoteIpBlocks: [198.51.100.0/24], notRemoteIpBlocks: [198.51.100.9]}
"#;

/// The same ALLOW by principal on a TCP port: B's inbound chain runs
/// Envoy's network RBAC before the TCP proxy, so A's connections (over its
/// TCP listener, then mTLS) reach the app and C's are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_on_a_tcp_port() {
    let (a_ip, b_ip, c_ip) = ("127.0.5.11", "127.0.5.12", "127.0.5.13");
    let work = tempfile::tempdir().unwrap();
    let b_app = Upstream::start(work.path(), b_ip, "db", "v1");
    let b_inbound = free_port();
    let port = free_port();
    let config = ConfigDir::new();
    let yaml = world(&b_app, b_inbound)
        .replace(A_IP, a_ip)
        .replace(B_IP, b_ip)
        .replace(C_IP, c_ip)
        .replace(
            "ports: [{name: http, port: 80}]",
            &format!("ports: [{{name: tcp-db, port: {port}}}]"),
        )
        .replace("ports: {http: ", "ports: {tcp-db: ");
    config.write("world.yaml", &yaml);
    config.write("allow-a.yaml", ALLOW_A);
    let sextant = Sextant::start(work.path(), config.path()).await;
    let a = Envoy::start_meshed(work.path(), &sextant, "a", a_ip, free_port()).await;
    let c = Envoy::start_meshed(work.path(), &sextant, "c", c_ip, free_port()).await;
    let _b = Envoy::start_meshed(work.path(), &sextant, "b", b_ip, b_inbound).await;
    wait_for(
        Duration::from_secs(10),
        "A's TCP connection to reach the app",
        || async { a.tcp_get(port).await.ok() },
    )
    .await;
    for _ in 0..5 {
        assert_eq!(a.tcp_get(port).await, Ok("v1".to_string()));
        assert!(c.tcp_get(port).await.is_err(), "C must be refused");
    }
    assert!(
        c.stat_sum("ssl.handshake").await >= 1,
        "C did reach B over mTLS"
    );
}
