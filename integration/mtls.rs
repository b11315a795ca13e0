//! End to end: mutual TLS between two sidecars with SPIFFE certificates from
//! Sextant's CA over SDS. Workload A (127.0.4.1) calls service `b`; B's app
//! (127.0.4.2) sits behind B's sidecar, whose inbound listener terminates
//! mTLS. Checked: the request arrives with A's SPIFFE ID (forwarded client
//! certificate), the sidecars' TLS handshakes happened, B's inbound port
//! presents B's SPIFFE ID over TLS 1.3 to a client holding a mesh
//! certificate (`openssl s_client`, certificate parsed with x509-parser), a
//! plaintext client is served under PERMISSIVE and refused under STRICT.

use crate::harness;

use harness::*;
use sextant::ca::{CaConfig, CertificateAuthority, SpiffeId, TrustDomain};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

const A_IP: &str = "127.0.4.1";
const B_IP: &str = "127.0.4.2";

fn world(b_app: &Upstream, b_inbound: u16) -> String {
    [
        meshed_service_yaml("b", B_IP, b_app, b_inbound),
        meshed_client_yaml("a", A_IP),
    ]
    .join("---\n")
}

const STRICT: &str = r#"apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: b-strict, namespace: default}
spec:
  selector: {matchLabels: {app: b}}
  mtls: {mode: STRICT}
"#;

/// A PeerAuthentication `name` for B with `mode` written as given (so it can
/// be misspelt).
fn peer_authentication(name: &str, mode: &str) -> String {
    format!(
        "apiVersion: security.sextant.dev/v1alpha1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{matchLabels: {{app: b}}}}
  mtls: {{mode: {mode}}}
"
    )
}

/// A mesh certificate for `sa`, signed by the CA sextant keeps in `ca_dir`,
/// written as PEM files; returns (cert, key, root) paths.
fn client_identity(ca_dir: &Path, out: &Path, sa: &str) -> (String, String, String) {
    let ca = CertificateAuthority::load_or_generate(ca_dir, &CaConfig::default()).unwrap();
    let id = SpiffeId::new(TrustDomain::default(), "default", sa).unwrap();
    let cert = ca
        .issue(&id, Duration::from_secs(600), SystemTime::now())
        .unwrap();
    let path = |name: &str| out.join(name).to_string_lossy().into_owned();
    std::fs::write(path("client.pem"), &cert.cert_chain_pem).unwrap();
    std::fs::write(path("client.key"), &cert.private_key_pem).unwrap();
    std::fs::write(path("root.pem"), &cert.root_pem).unwrap();
    (path("client.pem"), path("client.key"), path("root.pem"))
}

/// `openssl s_client` against `addr` with a client certificate: the
/// protocol it negotiated and the server's leaf certificate (DER).
fn handshake(addr: &str, cert: &str, key: &str, root: &str) -> (String, Vec<u8>) {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-cert", cert, "-key", key])
        .args(["-CAfile", root, "-verify_return_error", "-showcerts"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is needed (apt-get install openssl)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let protocol = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Protocol  :")
                .or_else(|| l.trim().strip_prefix("Protocol :"))
        })
        .map(|p| p.trim().to_string())
        .or_else(|| text.contains("TLSv1.3").then(|| "TLSv1.3".to_string()))
        .unwrap_or_else(|| {
            panic!(
                "no protocol in openssl's output:\n{text}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let pem_start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let pem_end = text[pem_start..].find("-----END CERTIFICATE-----").unwrap() + pem_start + 25;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text.as_bytes()[pem_start..pem_end]).unwrap();
    (protocol, pem.contents)
}

fn uri_sans(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().expect("a SAN");
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

async fn plaintext_status(addr: &str) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_talk_mutual_tls_with_spiffe_identities() {
    let work = tempfile::tempdir().unwrap();
    let b_app = Upstream::start(work.path(), B_IP, "b", "v1");
    let b_inbound = free_port();
    let config = ConfigDir::new();
    config.write("world.yaml", &world(&b_app, b_inbound));
    let sextant = Sextant::start(work.path(), config.path()).await;
    let a = Envoy::start_meshed(work.path(), &sextant, "a", A_IP, free_port()).await;
    let b = Envoy::start_meshed(work.path(), &sextant, "b", B_IP, b_inbound).await;

    // A → A's sidecar → (mTLS) → B's sidecar → B's app.
    a.wait_until_serving("b").await;
    let (status, body) = a.get("b", "/", &[]).await;
    assert_eq!(status, 200, "{body}");
    let xfcc = body["headers"]["x-forwarded-client-cert"]
        .as_str()
        .unwrap_or_default();
    assert!(
        xfcc.contains("URI=spiffe://cluster.local/ns/default/sa/a-sa"),
        "B's app should see A's identity: {body}"
    );
    assert!(
        a.stat_sum("cluster.outbound|80||b.default.svc.cluster.local.ssl.handshake")
            .await
            >= 1
    );
    assert!(b.stat_sum("ssl.handshake").await >= 1);

    // What B's inbound port presents: TLS 1.3 and B's SPIFFE ID.
    let (cert, key, root) = client_identity(&work.path().join(".sextant/ca"), work.path(), "a-sa");
    let inbound = format!("{B_IP}:{b_inbound}");
    let (protocol, der) = handshake(&inbound, &cert, &key, &root);
    assert_eq!(protocol, "TLSv1.3");
    assert_eq!(
        uri_sans(&der),
        ["spiffe://cluster.local/ns/default/sa/b-sa"]
    );

    // PERMISSIVE (the default): plaintext is served too.
    assert_eq!(plaintext_status(&inbound).await, Ok(200));

    // STRICT: plaintext is refused, mTLS from A still works.
    config.write("strict.yaml", STRICT);
    wait_for(
        Duration::from_secs(10),
        "plaintext to be refused",
        || async { plaintext_status(&inbound).await.is_err().then_some(()) },
    )
    .await;
    for _ in 0..5 {
        assert_eq!(a.get("b", "/", &[]).await.0, 200);
    }
    let certs = sextant.admin_json("/debug/certs").await;
    let ids: Vec<&str> = certs["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["spiffe_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "spiffe://cluster.local/ns/default/sa/a-sa",
            "spiffe://cluster.local/ns/default/sa/b-sa"
        ]
    );
    assert!(!certs.to_string().contains("PRIVATE KEY"));
    let table = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["proxy-config", "secret", "b.default", "--admin-address"])
        .arg(sextant.admin.to_string())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("spiffe://cluster.local/ns/default/sa/b-sa") && table.contains("ACTIVE"),
        "{table}"
    );
    assert!(!table.contains("PRIVATE"));

    // DISABLE: B takes plaintext only, and A's sidecar stops originating
    // mTLS to it (B's endpoint loses its tlsMode): B's app sees no identity.
    config.write("strict.yaml", &peer_authentication("b-strict", "DISABLE"));
    wait_for(
        Duration::from_secs(10),
        "A to reach B in plaintext",
        || async {
            let (status, body) = a.get("b", "/", &[]).await;
            (status == 200 && body["headers"]["x-forwarded-client-cert"].is_null()).then_some(())
        },
    )
    .await;
    assert_eq!(plaintext_status(&inbound).await, Ok(200));

    // A new PeerAuthentication that cannot be read fails closed: B is STRICT
    // again (not left PERMISSIVE), and the error names the object and field.
    config.remove("strict.yaml");
    config.write("typo.yaml", &peer_authentication("b-typo", "Strict"));
    wait_for(
        Duration::from_secs(10),
        "plaintext to be refused by the fail-closed stand-in",
        || async { plaintext_status(&inbound).await.is_err().then_some(()) },
    )
    .await;
    assert_eq!(a.get("b", "/", &[]).await.0, 200);
    let errors = sextant.admin_json("/debug/config_errors").await.to_string();
    assert!(
        errors.contains("b-typo")
            && errors.contains("spec.mtls.mode")
            && errors.contains("fails closed"),
        "{errors}"
    );
    assert_eq!(a.updates_rejected().await, 0);
    assert_eq!(b.updates_rejected().await, 0);
}

/// `sextant serve` on `xds`/`admin` with certificates living `ttl_seconds`.
async fn sextant_with_ttl(
    work: &Path,
    config: &Path,
    xds: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    ttl_seconds: u64,
    name: &str,
) -> Sextant {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
    command
        .args(["serve", "--config-dir"])
        .arg(config)
        .args(["--xds-address", &xds.to_string()])
        .args(["--admin-address", &admin.to_string()])
        .args(["--cert-ttl-seconds", &ttl_seconds.to_string()]);
    Sextant::spawn(work, command, xds, admin, name).await
}

fn serial_of(certs: &serde_json::Value, sa: &str) -> String {
    certs["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["spiffe_id"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/sa/{sa}"))
        })
        .map(|c| c["serial"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_traffic_and_a_restart_keeps_the_root() {
    let work = tempfile::tempdir().unwrap();
    let b_app = Upstream::start(work.path(), "127.0.4.12", "b", "v1");
    let b_inbound = free_port();
    let config = ConfigDir::new();
    let yaml = world(&b_app, b_inbound)
        .replace(A_IP, "127.0.4.11")
        .replace(B_IP, "127.0.4.12");
    config.write("world.yaml", &yaml);
    let xds: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // 4 s certificates: replaced every 2 s.
    let sextant = sextant_with_ttl(work.path(), config.path(), xds, admin, 4, "sextant").await;
    let a = Envoy::start_meshed(work.path(), &sextant, "a", "127.0.4.11", free_port()).await;
    let _b = Envoy::start_meshed(work.path(), &sextant, "b", "127.0.4.12", b_inbound).await;
    a.wait_until_serving("b").await;

    // 7 s of steady traffic across three rotations: no request fails.
    let mut serials = std::collections::BTreeSet::new();
    let started = std::time::Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(7) {
        let (status, body) = a.get("b", "/", &[]).await;
        assert_eq!(status, 200, "request {requests} failed: {body}");
        requests += 1;
        if requests % 10 == 0 {
            serials.insert(serial_of(&sextant.admin_json("/debug/certs").await, "b-sa"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        serials.len() >= 3,
        "B's certificate should have rotated at least twice in 7 s: {serials:?}"
    );
    let root = sextant.admin_json("/debug/certs").await["root_pem"].clone();

    // A restart keeps the root: the Envoys reconnect, keep serving and
    // accept the new certificates.
    drop(sextant);
    let sextant = sextant_with_ttl(work.path(), config.path(), xds, admin, 4, "sextant-2").await;
    assert_eq!(sextant.admin_json("/debug/certs").await["root_pem"], root);
    wait_for(
        Duration::from_secs(10),
        "new certificates after the restart",
        || async {
            let certs = sextant.admin_json("/debug/certs").await;
            (!serial_of(&certs, "b-sa").is_empty() && !serial_of(&certs, "a-sa").is_empty())
                .then_some(())
        },
    )
    .await;
    for _ in 0..20 {
        assert_eq!(a.get("b", "/", &[]).await.0, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// DestinationRule `tls` SIMPLE: the client sidecar originates TLS to an
/// external HTTPS server (`openssl s_server` on loopback), verifying it
/// against a CA file and a subject alt name; a wrong name makes the
/// handshake fail (503) instead of talking to an unverified server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_tls_origination_verifies_the_server() {
    let work = tempfile::tempdir().unwrap();
    // A server certificate from a throwaway CA (our CA module makes one).
    let ca_dir = work.path().join("external-ca");
    let ca = CertificateAuthority::load_or_generate(&ca_dir, &CaConfig::default()).unwrap();
    let id = SpiffeId::new(TrustDomain::default(), "partners", "secure-api").unwrap();
    let cert = ca
        .issue(&id, Duration::from_secs(600), SystemTime::now())
        .unwrap();
    let file = |name: &str, text: &str| {
        let path = work.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let (server_cert, server_key) = (
        file("srv.pem", &cert.cert_chain_pem),
        file("srv.key", &cert.private_key_pem),
    );
    let ca_file = file("partner-ca.pem", &cert.root_pem);
    let port = free_port();
    let mut s_server = Command::new("openssl");
    s_server
        .args([
            "s_server",
            "-accept",
            &format!("127.0.6.1:{port}"),
            "-www",
            "-naccept",
            "1000",
        ])
        .args(["-cert", &server_cert, "-key", &server_key])
        .stdin(std::process::Stdio::null());
    let _server = Process::spawn(
        "openssl s_server",
        s_server,
        work.path().join("s_server.log"),
    );

    let config = ConfigDir::new();
    let entry = |name: &str, san: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  hosts: [{name}.partner.test]\n  resolution: STATIC\n  ports: [{{number: 80, name: http, targetPort: {port}}}]\n  endpoints: [{{address: 127.0.6.1}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  host: {name}.partner.test\n  trafficPolicy:\n    tls: {{mode: SIMPLE, caCertificates: {ca_file}, subjectAltNames: [\"{san}\"]}}\n"
        )
    };
    config.write(
        "good.yaml",
        &entry("good", "spiffe://cluster.local/ns/partners/sa/secure-api"),
    );
    config.write(
        "wrong.yaml",
        &entry("wrong", "spiffe://cluster.local/ns/partners/sa/impostor"),
    );
    let sextant = Sextant::start(work.path(), config.path()).await;
    let envoy = Envoy::start(
        work.path(),
        &sextant,
        Workload::client("tls-client.default"),
    )
    .await;
    let answer = wait_for(
        Duration::from_secs(10),
        "the HTTPS server to answer",
        || async {
            let (status, body) = envoy.get("good.partner.test", "/", &[]).await;
            (status == 200).then_some(body)
        },
    )
    .await;
    // `s_server -www` answers with a page describing the TLS session.
    assert!(answer.to_string().contains("TLSv1.3"), "{answer}");
    assert_eq!(envoy.get("wrong.partner.test", "/", &[]).await.0, 503);
    assert!(
        envoy
            .stat_sum("cluster.outbound|80||wrong.partner.test.ssl.fail_verify_san")
            .await
            >= 1
    );
    assert_eq!(envoy.updates_rejected().await, 0);
}

/// `sextant token` for `sa` in `default`, written to `<work>/<sa>.token`,
/// signed with the key in the CA directory sextant uses (`.sextant/ca`
/// under its working directory).
fn token_file(work: &Path, sa: &str) -> std::path::PathBuf {
    let path = work.join(format!("{sa}.token"));
    let status = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["token", "--namespace", "default", "--service-account", sa])
        .arg("--ca-dir")
        .arg(work.join(".sextant/ca"))
        .arg("--output")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "sextant token failed");
    path
}

/// With `--require-token`, a node's claimed identity must be proven: A and B
/// with their own tokens get certificates and talk mTLS; a proxy that
/// claims B's identity with A's token, or any identity without a token, is
/// refused with the reason (and gets no certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_token_refuses_proxies_that_cannot_prove_their_identity() {
    let work = tempfile::tempdir().unwrap();
    let b_app = Upstream::start(work.path(), B_IP, "b", "v1");
    let b_inbound = free_port();
    let config = ConfigDir::new();
    config.write("world.yaml", &world(&b_app, b_inbound));
    let (a_token, b_token) = (
        token_file(work.path(), "a-sa"),
        token_file(work.path(), "b-sa"),
    );
    let (xds, admin): (std::net::SocketAddr, std::net::SocketAddr) = (
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
    command
        .args(["serve", "--require-token", "--config-dir"])
        .arg(config.path())
        .args(["--xds-address", &xds.to_string()])
        .args(["--admin-address", &admin.to_string()]);
    let sextant = Sextant::spawn(work.path(), command, xds, admin, "sextant").await;

    let a = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            token_file: Some(&a_token),
            ..Workload::client("a.default").meshed(A_IP, "a-sa", free_port())
        },
    )
    .await;
    let _b = Envoy::start(
        work.path(),
        &sextant,
        Workload {
            labels: "app=b",
            token_file: Some(&b_token),
            ..Workload::client("b.default").meshed(B_IP, "b-sa", b_inbound)
        },
    )
    .await;
    a.wait_until_serving("b").await;
    let (status, body) = a.get("b", "/", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["headers"]["x-forwarded-client-cert"]
            .as_str()
            .unwrap_or_default()
            .contains("URI=spiffe://cluster.local/ns/default/sa/a-sa"),
        "{body}"
    );

    // A's token cannot buy B's identity; no token buys nothing.
    let _impostor = Envoy::launch(
        work.path(),
        &sextant,
        Workload {
            token_file: Some(&a_token),
            ..Workload::client("impostor.default").meshed(B_IP, "b-sa", free_port())
        },
    )
    .await;
    let _anonymous = Envoy::launch(
        work.path(),
        &sextant,
        Workload::client("anonymous.default").meshed(A_IP, "a-sa", free_port()),
    )
    .await;
    wait_for(
        Duration::from_secs(10),
        "both refusals in sextant's log",
        || async {
            let log = sextant.process.log();
            (log.contains("the token is for system:serviceaccount:default:a-sa, but the node claims system:serviceaccount:default:b-sa")
                && log.contains("no token"))
            .then_some(())
        },
    )
    .await;
    // Their stats streams (Envoy's metrics service client carries no token)
    // are refused too: only nodes with an open ADS stream may send telemetry.
    wait_for(
        Duration::from_secs(20),
        "the anonymous proxy's metrics stream refused in sextant's log",
        || async {
            sextant
                .process
                .log()
                .contains(
                    "refusing a metrics stream: node \"anonymous.default\" has no open ADS stream",
                )
                .then_some(())
        },
    )
    .await;
    let proxies = sextant.admin_json("/debug/proxies").await.to_string();
    assert!(
        proxies.contains("a.default")
            && !proxies.contains("impostor")
            && !proxies.contains("anonymous"),
        "{proxies}"
    );
    let (_, metrics) = sextant.admin_get("/metrics").await;
    let refused: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sextant_xds_refused_streams_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no refused-streams counter in:\n{metrics}"));
    assert!(refused >= 2.0, "{refused}");
}
