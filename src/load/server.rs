//! The server under test: a `sextant serve` child process the tool starts
//! on free loopback ports (killed when dropped), or an address given.

use super::LoadError;
use crate::procfs::{self, ProcSample};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start `sextant serve`.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The `sextant` binary.
    pub binary: PathBuf,
    /// The config directory to serve.
    pub config_dir: PathBuf,
    /// Where the CA and the log go.
    pub work_dir: PathBuf,
    /// `--debounce-quiet-ms`.
    pub debounce_quiet_ms: u64,
    /// `--debounce-max-ms`.
    pub debounce_max_ms: u64,
    /// Run the benchmark-only naive baseline (`--naive-baseline`).
    pub naive_baseline: bool,
}

/// A server to load.
#[derive(Debug)]
pub struct Server {
    /// Its ADS address.
    pub xds: SocketAddr,
    /// Its process id, when known (for `/proc`).
    pub pid: Option<u32>,
    child: Option<Child>,
    log: Option<PathBuf>,
}

/// A port the OS says is free on 127.0.0.1.
fn free_port() -> Result<u16, LoadError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| LoadError::Server(format!("no free port on 127.0.0.1: {e}")))
}

impl Server {
    /// A server someone else runs at `xds` (with process id `pid`, if given).
    pub fn existing(xds: SocketAddr, pid: Option<u32>) -> Server {
        Server {
            xds,
            pid,
            child: None,
            log: None,
        }
    }

    /// Starts `sextant serve` and waits (up to `timeout`) until it accepts
    /// connections and its `/readyz` answers 200 (the world is loaded).
    ///
    /// # Errors
    /// [`LoadError::Server`] with the end of its log when it does not start.
    pub async fn start(options: &ServeOptions, timeout: Duration) -> Result<Server, LoadError> {
        let xds: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let log = options.work_dir.join(if options.naive_baseline {
            "sextant-naive-baseline.log"
        } else {
            "sextant.log"
        });
        let file = std::fs::File::create(&log).map_err(LoadError::file(&log))?;
        let stderr = file.try_clone().map_err(LoadError::file(&log))?;
        let mut command = Command::new(&options.binary);
        command
            .arg("serve")
            .arg("--config-dir")
            .arg(&options.config_dir)
            .args(["--xds-address", &xds.to_string()])
            .args(["--admin-address", &admin.to_string()])
            .args([
                "--debounce-quiet-ms",
                &options.debounce_quiet_ms.to_string(),
            ])
            .args(["--debounce-max-ms", &options.debounce_max_ms.to_string()])
            .arg("--ca-dir")
            .arg(options.work_dir.join("ca"))
            // Quiet unless the caller asks for more (e.g. SEXTANT_LOG=info).
            .env(
                "SEXTANT_LOG",
                std::env::var("SEXTANT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(stderr));
        if options.naive_baseline {
            command.arg("--naive-baseline");
        }
        let child = command.spawn().map_err(|e| {
            LoadError::Server(format!("starting {}: {e}", options.binary.display()))
        })?;
        let mut server = Server {
            xds,
            pid: Some(child.id()),
            child: Some(child),
            log: Some(log),
        };
        let url = format!("http://{admin}/readyz");
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(child) = server.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(LoadError::Server(format!(
                        "sextant serve exited ({status}):\n{}",
                        server.log_tail()
                    )));
                }
            }
            let ready = client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(server);
            }
            if started.elapsed() > timeout {
                return Err(LoadError::Server(format!(
                    "not ready after {timeout:?}:\n{}",
                    server.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// CPU and memory of the server now, when its process id is known.
    pub fn sample(&self) -> Option<ProcSample> {
        procfs::sample(self.pid?).ok()
    }

    /// The last 40 lines of the server's log (empty for an existing server).
    pub fn log_tail(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The log file, if the tool started the server.
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
