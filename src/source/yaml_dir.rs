//! The YAML-directory source: every `*.yaml` / `*.yml` file under a
//! directory (recursively, multi-document files too), watched with notify.

use super::parse::parse_documents;
use crate::diagnostic::Diagnostic;
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Stands for the content of a file that could never be read.
const UNREADABLE: &str = "\0unreadable";

/// Largest config file read, in bytes (a larger one is an error, and its
/// last good content stays served).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a config file: a regular file (or a symlink to one) of at most
/// [`MAX_FILE_BYTES`]. A FIFO, device or socket is refused without being
/// opened (opening a FIFO would block the whole source).
///
/// # Errors
/// The I/O error, or why the file is not read.
pub fn read_config_file(path: &Path) -> std::io::Result<String> {
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, device or socket), so it is not read",
        ));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than the {MAX_FILE_BYTES} bytes a config file may have",
            metadata.len()
        )));
    }
    std::fs::read_to_string(path)
}

/// A config directory and the content last read from each of its files.
#[derive(Debug)]
pub struct YamlDir {
    root: PathBuf,
    contents: BTreeMap<String, LastRead>,
    /// [`SETTLED`] (a test sets 0).
    settled: std::time::Duration,
}

/// What a sync last read from one file.
#[derive(Debug)]
struct LastRead {
    /// The file's text ([`UNREADABLE`] if it could not be read).
    text: String,
    /// The file's metadata before that read, when it lets a later sync
    /// skip reading the file: see [`Stamp::trusted`].
    stamp: Option<Stamp>,
}

/// What tells whether a file may have changed without reading it: size,
/// modification and status-change times (ns), inode and device. A write
/// changes the status-change time even where a tool restores the
/// modification time; replacing the file (an editor's rename, a ConfigMap's
/// symlink swap) changes the inode.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    inode: u64,
    device: u64,
}

/// How old a file's modification must be, when read, for its [`Stamp`] to
/// be trusted later.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

impl Stamp {
    /// The stamp of `path` (following symlinks), if it can be read.
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            len: m.len(),
            modified: (m.mtime(), m.mtime_nsec()),
            changed: (m.ctime(), m.ctime_nsec()),
            inode: m.ino(),
            device: m.dev(),
        })
    }

    /// This stamp, taken just before reading the file at `now`, if a later
    /// equal stamp proves the file unchanged since. A file written within
    /// [`SETTLED`] before the read may be written again within the
    /// timestamps' granularity (the kernel's clock tick) without changing
    /// its stamp, so its stamp is not kept and the next sync reads it again
    /// (git's rule for "racily clean" index entries).
    fn trusted(self, now: std::time::SystemTime, settled: std::time::Duration) -> Option<Stamp> {
        let written = std::time::UNIX_EPOCH
            + std::time::Duration::new(u64::try_from(self.modified.0.max(self.changed.0)).ok()?, 0);
        (written + settled < now).then_some(self)
    }
}

/// What one [`YamlDir::sync`] did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Whether the store's served objects changed.
    pub changed: bool,
    /// Files read again because they are new or changed, or removed.
    pub files: Vec<String>,
    /// Diagnostics of the files read again.
    pub diagnostics: Vec<Diagnostic>,
    /// How many files were read (the others were proven unchanged by their
    /// metadata).
    pub read: usize,
}

impl YamlDir {
    /// A source for `root`; nothing is read until [`YamlDir::sync`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        YamlDir {
            root: root.into(),
            contents: BTreeMap::new(),
            settled: SETTLED,
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads every file that is new or changed since the last sync into
    /// `store`, and removes files that are gone. Files are named in the store
    /// (and in messages) by their path as given under the root. A file whose
    /// metadata is what it was at an earlier read, and had settled then
    /// (see `Stamp::trusted`), is not read again: at 10,000 services
    /// reading all 100 files of the directory (13.6 MB) to find the one
    /// that changed was a tenth of an endpoint change's server time.
    ///
    /// # Errors
    /// When the directory itself cannot be listed; a single unreadable file is
    /// a diagnostic instead, and its last good content stays served.
    pub fn sync(&mut self, store: &mut Store) -> std::io::Result<SyncReport> {
        let mut files = Vec::new();
        collect_yaml_files(&self.root, &mut files)?;
        files.sort();
        let mut report = SyncReport::default();
        let mut previous = std::mem::take(&mut self.contents);
        let mut seen = BTreeMap::new();
        for path in files {
            let name = path.display().to_string();
            let stamp = Stamp::of(&path);
            let previous_text = match previous.remove(&name) {
                Some(last) if last.stamp.is_some() && last.stamp == stamp => {
                    seen.insert(name, last);
                    continue;
                }
                last => last.map(|l| l.text),
            };
            let read_at = std::time::SystemTime::now();
            report.read += 1;
            let text = match read_config_file(&path) {
                Ok(text) => text,
                Err(err) => {
                    let d = Diagnostic {
                        severity: crate::diagnostic::Severity::Error,
                        file: Some(name.clone()),
                        object: None,
                        field: String::new(),
                        message: format!(
                            "cannot read the file: {err}; its last good content stays served"
                        ),
                    };
                    report.diagnostics.push(d.clone());
                    store.keep_with_diagnostics(&name, vec![d]);
                    // Remember the file (so its deletion is noticed) with
                    // content no readable file has, so it is parsed again
                    // once it can be read.
                    seen.insert(
                        name,
                        LastRead {
                            text: UNREADABLE.to_string(),
                            stamp: None,
                        },
                    );
                    continue;
                }
            };
            if previous_text.as_deref() != Some(text.as_str()) {
                let parsed = parse_documents(&name, &text);
                report
                    .diagnostics
                    .extend(parsed.diagnostics.iter().cloned());
                report.changed |= store.apply(&name, parsed);
                report.files.push(name.clone());
            }
            seen.insert(
                name,
                LastRead {
                    text,
                    stamp: stamp.and_then(|s| s.trusted(read_at, self.settled)),
                },
            );
        }
        // What is left of the previous reads is of files that are gone.
        for gone in previous.keys() {
            report.changed |= store.remove(gone);
            report.files.push(gone.clone());
        }
        self.contents = seen;
        Ok(report)
    }

    /// Watches the directory; the receiver gets a message after any change
    /// below it (several changes may be coalesced into one). Dropping the
    /// returned watcher stops watching.
    ///
    /// # Errors
    /// When the platform watcher cannot be set up.
    pub fn watch(&self) -> notify::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
        use notify::Watcher;
        let (tx, rx) = mpsc::channel(1);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                match event {
                    Ok(event) if event.kind.is_access() => {}
                    Ok(_) => {
                        // A full channel already holds a wake-up; the next sync reads everything.
                        let _ = tx.try_send(());
                    }
                    Err(err) => {
                        tracing::warn!("watching the config directory: {err}");
                        let _ = tx.try_send(());
                    }
                }
            })?;
        watcher.watch(&self.root, notify::RecursiveMode::Recursive)?;
        Ok((watcher, rx))
    }
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_name = entry.file_name();
        if file_name.to_string_lossy().starts_with('.') {
            continue; // editor swap files and hidden directories
        }
        if entry.file_type()?.is_dir() {
            collect_yaml_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
