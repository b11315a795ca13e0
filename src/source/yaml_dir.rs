//! The YAML-directory source: every `*.yaml` / `*.yml` file under a
//! directory (recursively, multi-document files too), watched with notify.

use super::documents::ParsedText;
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

/// A config directory and the content last read from each of its files
/// (with what each document parsed to, so an edit re-parses only the
/// documents it changed: [`super::documents`]).
#[derive(Debug)]
pub struct YamlDir {
    root: PathBuf,
    contents: BTreeMap<String, ParsedText>,
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
}

impl YamlDir {
    /// A source for `root`; nothing is read until [`YamlDir::sync`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        YamlDir {
            root: root.into(),
            contents: BTreeMap::new(),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads every file that is new or changed since the last sync into
    /// `store`, and removes files that are gone. Files are named in the store
    /// (and in messages) by their path as given under the root.
    ///
    /// # Errors
    /// When the directory itself cannot be listed; a single unreadable file is
    /// a diagnostic instead, and its last good content stays served.
    pub fn sync(&mut self, store: &mut Store) -> std::io::Result<SyncReport> {
        let mut files = Vec::new();
        collect_yaml_files(&self.root, &mut files)?;
        files.sort();
        let mut report = SyncReport::default();
        let mut seen = BTreeMap::new();
        for path in files {
            let name = path.display().to_string();
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
                    self.contents.remove(&name);
                    seen.insert(name, ParsedText::unparsed(UNREADABLE.to_string()));
                    continue;
                }
            };
            let previous = self.contents.remove(&name);
            let state = match previous {
                Some(previous) if previous.text() == text => previous,
                previous => {
                    let (state, parsed) = ParsedText::parse(&name, text, previous.as_ref());
                    report
                        .diagnostics
                        .extend(parsed.diagnostics.iter().cloned());
                    report.changed |= store.apply(&name, parsed);
                    report.files.push(name.clone());
                    state
                }
            };
            seen.insert(name, state);
        }
        // What is left was not found this time.
        for gone in self.contents.keys() {
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
