//! gRPC parts of the end-to-end tests: a Python gRPC echo upstream
//! (`integration/grpc/echo_server.py`) and client (`echo_client.py`), from
//! `pip install grpcio`; tests fail, never skip, without it.

use super::Process;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What installs the Python gRPC library the scripts need.
pub const GRPCIO_INSTALL: &str = "pip install grpcio==1.85.3";

/// Path of a script under `integration/grpc`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("integration/grpc")
        .join(name)
}

/// Fails the test, with the install command, when `import grpc` fails.
pub fn require_grpcio() {
    let ok = Command::new("python3")
        .args(["-c", "import grpc"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 cannot import grpc; this test needs gRPC's Python xDS client: {GRPCIO_INSTALL}"
    );
}

/// A Python gRPC echo server on `ip` (free port), killed on drop: the
/// method `/sextant.demo.Echo/Say` answers `reviews-<version>`, or fails
/// with INTERNAL when the request is `fail`.
pub struct GrpcUpstream {
    _process: Process,
    pub port: u16,
}

pub fn start_grpc_upstream(workdir: &std::path::Path, ip: &str, version: &str) -> GrpcUpstream {
    let mut child = Command::new("python3")
        .arg(script("echo_server.py"))
        .args([
            "--listen",
            &format!("{ip}:0"),
            "--name",
            "reviews",
            "--version",
            version,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the gRPC echo server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let log = workdir.join(format!("grpc-upstream-{version}.log"));
    std::fs::write(&log, &line).unwrap();
    GrpcUpstream {
        _process: Process::adopt(&format!("grpc upstream {version}"), child, log),
        port,
    }
}

/// Runs the echo client with `args`, with a gRPC xDS bootstrap if given;
/// the answers counted by text (`error <CODE>: <details>` for failures).
pub fn call_with(args: &[&str], bootstrap: Option<&std::path::Path>) -> BTreeMap<String, u64> {
    call_with_env(args, bootstrap, &[])
}

/// [`call_with`] with more environment variables for the client (e.g.
/// `ECHO_FAIL_EVERY=k`: every k-th call, from the first, asks to fail).
pub fn call_with_env(
    args: &[&str],
    bootstrap: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> BTreeMap<String, u64> {
    let mut command = Command::new("python3");
    command.arg(script("echo_client.py")).args(args);
    command.envs(env.iter().copied());
    if let Some(bootstrap) = bootstrap {
        command.env("GRPC_XDS_BOOTSTRAP", bootstrap);
    }
    let output = command.output().expect("running the gRPC client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "gRPC client failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("client output {stdout:?}: {e}"))
}
