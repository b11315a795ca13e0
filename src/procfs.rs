//! CPU time, memory and open file descriptors of a process, from
//! `/proc/<pid>` (Linux only): the load tool reads the server's, `/metrics`
//! reads its own (the `process_*` metrics).

use std::time::Duration;

/// One reading of a process's resource use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// User plus system CPU time since the process started.
    pub cpu: Duration,
    /// Resident set size now, in bytes (`VmRSS`).
    pub rss_bytes: u64,
    /// Peak resident set size since the process started, in bytes (`VmHWM`).
    pub peak_rss_bytes: u64,
}

/// Reads `/proc/<pid>/stat` (fields 14 and 15: `utime`, `stime` in clock
/// ticks) and `/proc/<pid>/status` (`VmRSS`, `VmHWM` in kB).
///
/// # Errors
/// The I/O error when the process is gone or `/proc` is missing, or
/// `InvalidData` when a file does not have the documented shape.
pub fn sample(pid: u32) -> std::io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse(&stat, &status, clock_ticks_per_second()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected /proc format")
    })
}

/// The number of open file descriptors of `pid` (entries of `/proc/<pid>/fd`),
/// sockets of connected proxies included.
///
/// # Errors
/// The I/O error when the process is gone, `/proc` is missing or the
/// directory may not be read.
pub fn open_fds(pid: u32) -> std::io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// `sysconf(_SC_CLK_TCK)`: the unit of `utime` and `stime`.
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// Parses the contents of `stat` and `status` with `ticks` clock ticks per second.
pub(crate) fn parse(stat: &str, status: &str, ticks: u64) -> Option<ProcSample> {
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its closing parenthesis (field 3 is the first).
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    let ticks = ticks.max(1);
    let total = utime + stime;
    let cpu = Duration::from_secs(total / ticks)
        + Duration::from_nanos((total % ticks) * 1_000_000_000 / ticks);
    let kb = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(ProcSample {
        cpu,
        rss_bytes: kb("VmRSS:")? * 1024,
        peak_rss_bytes: kb("VmHWM:")? * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_memory() {
        let stat = "4242 (sextant serve) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000000 2500 18446744073709551615";
        let status = "Name:\tsextant\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        let s = parse(stat, status, 100).unwrap();
        assert_eq!(s.cpu, Duration::from_secs(3));
        assert_eq!(s.rss_bytes, 10240 * 1024);
        assert_eq!(s.peak_rss_bytes, 20480 * 1024);
    }

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 0 && s.peak_rss_bytes >= s.rss_bytes);
    }

    /// A `sleep 30` started by `sh -c SCRIPT`, once `sleep` runs.
    fn sleeper(script: &str) -> std::process::Child {
        use std::process::{Command, Stdio};
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let comm = format!("/proc/{}/comm", child.id());
        for _ in 0..500 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
                return child;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("{script}: sleep never started");
    }

    /// The descriptor numbers open in `pid`, read here independently of
    /// [`open_fds`].
    fn descriptors(pid: u32) -> std::collections::BTreeSet<String> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    #[test]
    fn counts_the_descriptors_of_a_process() {
        // Both children inherit the same descriptors from the test runner
        // (e.g. cargo's jobserver pipe); one also opens 5, 6 and 7, which
        // replace any it inherited under those numbers.
        let mut plain = sleeper("exec sleep 30");
        let mut more = sleeper("exec 5</dev/null 6</dev/null 7</dev/null; exec sleep 30");
        let inherited = descriptors(plain.id());
        let counted = (open_fds(plain.id()), open_fds(more.id()));
        for child in [&mut plain, &mut more] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let mut expected = inherited.clone();
        expected.extend(["5", "6", "7"].map(String::from));
        assert!(
            inherited.len() >= 3,
            "stdin, stdout, stderr at least: {inherited:?}"
        );
        assert_eq!(counted.0.unwrap(), inherited.len(), "{inherited:?}");
        assert_eq!(counted.1.unwrap(), expected.len(), "{expected:?}");
    }
}
