//! Debian's headless `chromium`, for the tests that load the `/ui` page.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to get chromium when it is missing.
pub const CHROMIUM_INSTALL: &str = "apt-get install -y chromium";

/// Path of Debian's `chromium`; fails (never skips) with the install command.
pub fn chromium_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| [dir.join("chromium"), dir.join("chromium-browser")])
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`chromium` is not on PATH; the /ui test needs a real browser: {CHROMIUM_INSTALL}"
            )
        })
}

/// Runs headless chromium on `url` with `extra` arguments, its profile in
/// `profile`, and returns its stdout. The page's timers and fetches run in
/// virtual time for 5 s before chromium dumps or shoots.
pub async fn chromium(profile: &Path, url: &str, extra: &[String]) -> String {
    let mut command = tokio::process::Command::new(chromium_binary());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("running chromium");
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 DOM")
}

/// Saves a PNG screenshot of `url` (`width` × `height` pixels) as
/// `$CARGO_TARGET_TMPDIR/<file>`, a test artifact, checks it is a PNG and
/// returns its path.
pub async fn screenshot(profile: &Path, url: &str, file: &str, width: u32, height: u32) -> PathBuf {
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    let _ = std::fs::remove_file(&shot);
    chromium(
        profile,
        url,
        &[
            format!("--screenshot={}", shot.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".to_string(),
        ],
    )
    .await;
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!("screenshot of {url}: {}", shot.display());
    shot
}
