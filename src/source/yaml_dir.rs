//! The YAML-directory source: every `*.yaml` / `*.yml` file under a
//! directory (recursively, multi-document files too), watched with notify.

use super::documents::ParsedText;
use crate::diagnostic::Diagnostic;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
///
/// Once [`YamlDir::watch`]ed, a sync reads only the files the watcher
/// named since the last one, when it can tell that nothing else changed
/// (see [`YamlDir::sync`]); otherwise, and always when not watched, it
/// reads every file.
#[derive(Debug)]
pub struct YamlDir {
    root: PathBuf,
    contents: BTreeMap<String, ParsedText>,
    /// What the watcher saw since the last sync; `None` while not watched.
    pending: Option<Arc<Mutex<Pending>>>,
    /// Wakes whoever waits on [`YamlDir::watch`]'s receiver.
    wake: Option<mpsc::Sender<()>>,
    /// Set once the watcher reported an error (a watch it could not add,
    /// at the inotify limit, leaves a directory unwatched for good): every
    /// sync then reads every file.
    watcher_failed: Arc<AtomicBool>,
    /// The root as the watcher names paths: absolute (notify joins a
    /// relative root to the working directory).
    watched_root: PathBuf,
    /// Whether a config file was a symbolic link or had several hard links
    /// at the last full read: its content can then change with no event
    /// naming it (a Kubernetes ConfigMap volume swaps its `..data` link; a
    /// write through another name), so every sync reads every file.
    linked: bool,
}

/// What changed below the root since the last sync.
#[derive(Debug)]
enum Pending {
    /// At most these paths (as the watcher names them).
    Paths(BTreeSet<PathBuf>),
    /// Anything may have: read every file.
    Everything,
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
    /// Whether every file was read (false: only those the watcher named).
    pub read_every_file: bool,
}

impl YamlDir {
    /// A source for `root`; nothing is read until [`YamlDir::sync`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        YamlDir {
            watched_root: root.clone(),
            root,
            contents: BTreeMap::new(),
            pending: None,
            wake: None,
            watcher_failed: Arc::new(AtomicBool::new(false)),
            linked: false,
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
    /// When watched, only the files the watcher named are read, unless an
    /// event names the root, a directory, a symbolic link, a path through a
    /// linked directory, a file with several hard links, a path outside the
    /// root, a path that cannot be examined, or a removed path that held
    /// config files (a directory moved away), or the watcher lost events
    /// (queue overflow), or it ever reported an error, or a config file is
    /// a symbolic link or has several hard links: then every file is. When
    /// an event made it read every file, the next sync does too, and the
    /// watcher's receiver is woken for it: the watcher watches a new
    /// directory only after handling its event, so a file created in it
    /// meanwhile has no event of its own. Events on hidden
    /// files and files of other extensions are ignored (an editor's
    /// temporary file, `.x.yaml.tmp` renamed to `x.yaml`, is read under its
    /// final name). A file whose path is not UTF-8 is never read (it is
    /// named in a warning at each full read).
    ///
    /// # Errors
    /// When the directory itself cannot be listed; a single unreadable file is
    /// a diagnostic instead, and its last good content stays served.
    pub fn sync(&mut self, store: &mut Store) -> std::io::Result<SyncReport> {
        let pending = match &self.pending {
            Some(pending) => std::mem::replace(
                &mut *pending.lock().expect("pending changes lock"),
                Pending::Paths(BTreeSet::new()),
            ),
            None => Pending::Everything,
        };
        let trusted = !self.linked && !self.watcher_failed.load(Ordering::Relaxed);
        let (files, follow_up) = match pending {
            Pending::Paths(paths) if trusted => match self.files_named(&paths) {
                Some(files) => (Some(files), false),
                None => (None, true),
            },
            _ => (None, false),
        };
        let result = match files {
            Some(files) => Ok(self.sync_files(files, store)),
            None => self.sync_all(store),
        };
        if result.is_err() || follow_up {
            if let Some(pending) = &self.pending {
                *pending.lock().expect("pending changes lock") = Pending::Everything;
            }
            if let Some(wake) = &self.wake {
                let _ = wake.try_send(());
            }
        }
        result
    }

    /// The config files (below the root, as the store names them) that
    /// `paths` may have changed, or `None` when every file must be read
    /// (see [`YamlDir::sync`]).
    fn files_named(&self, paths: &BTreeSet<PathBuf>) -> Option<BTreeSet<PathBuf>> {
        let mut files = BTreeSet::new();
        for path in paths {
            let below = path.strip_prefix(&self.watched_root).ok()?;
            if below.as_os_str().is_empty() {
                return None; // the root itself
            }
            if below.to_str().is_none() {
                continue; // never read
            }
            if self.through_a_link(below)? {
                return None;
            }
            let file = self.root.join(below);
            let hidden = below
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
            let config = !hidden && is_config_file_name(&file);
            match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.is_dir() || meta.file_type().is_symlink() || meta.nlink() > 1 => {
                    return None
                }
                Ok(_) => {
                    if config {
                        files.insert(file);
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    let name = file.display().to_string();
                    if self.contents.contains_key(&name) {
                        files.insert(file);
                    } else {
                        // A directory that held config files, moved away or removed.
                        let inside = format!("{name}/");
                        let held = self.contents.range(inside.clone()..).next();
                        if held.is_some_and(|(k, _)| k.starts_with(&inside)) {
                            return None;
                        }
                    }
                }
                Err(_) => return None,
            }
        }
        Some(files)
    }

    /// Whether a directory on the way from the root to `below` is a
    /// symbolic link; `None` when that cannot be told. A directory already
    /// gone is no link: what was read below it was read through real
    /// directories.
    fn through_a_link(&self, below: &Path) -> Option<bool> {
        let mut dir = self.watched_root.clone();
        for component in below.parent().into_iter().flat_map(Path::components) {
            dir.push(component);
            match std::fs::symlink_metadata(&dir) {
                Ok(meta) if meta.file_type().is_symlink() => return Some(true),
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Some(false),
                Err(_) => return None,
            }
        }
        Some(false)
    }

    /// Reads every file under the root.
    fn sync_all(&mut self, store: &mut Store) -> std::io::Result<SyncReport> {
        let mut files = Vec::new();
        collect_yaml_files(&self.root, &mut files)?;
        files.sort();
        let mut report = SyncReport {
            read_every_file: true,
            ..SyncReport::default()
        };
        let mut seen = BTreeMap::new();
        self.linked = false;
        for path in files {
            self.linked |= std::fs::symlink_metadata(&path)
                .is_ok_and(|meta| meta.file_type().is_symlink() || meta.nlink() > 1);
            let name = path.display().to_string();
            let state = self.read(&path, name.clone(), store, &mut report);
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

    /// Reads `files` (each present or removed) and nothing else.
    fn sync_files(&mut self, files: BTreeSet<PathBuf>, store: &mut Store) -> SyncReport {
        let mut report = SyncReport::default();
        for path in files {
            let name = path.display().to_string();
            let gone = std::fs::symlink_metadata(&path)
                .is_err_and(|err| err.kind() == std::io::ErrorKind::NotFound);
            if gone {
                if self.contents.remove(&name).is_some() {
                    report.changed |= store.remove(&name);
                    report.files.push(name);
                }
                continue;
            }
            let state = self.read(&path, name.clone(), store, &mut report);
            self.contents.insert(name, state);
        }
        report
    }

    /// Reads the file at `path` (named `name`) into `store` if its content
    /// changed, and returns what to remember of it.
    fn read(
        &mut self,
        path: &Path,
        name: String,
        store: &mut Store,
        report: &mut SyncReport,
    ) -> ParsedText {
        let previous = self.contents.remove(&name);
        let text = match read_config_file(path) {
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
                return ParsedText::unparsed(UNREADABLE.to_string());
            }
        };
        match previous {
            Some(previous) if previous.text() == text => previous,
            previous => {
                let (state, parsed) = ParsedText::parse(&name, text, previous.as_ref());
                report
                    .diagnostics
                    .extend(parsed.diagnostics.iter().cloned());
                report.changed |= store.apply(&name, parsed);
                report.files.push(name);
                state
            }
        }
    }

    /// Watches the directory; the receiver gets a message after any change
    /// below it (several changes may be coalesced into one), and the next
    /// [`YamlDir::sync`] reads what the watcher named. Dropping the
    /// returned watcher stops watching.
    ///
    /// # Errors
    /// When the platform watcher cannot be set up, or the working directory
    /// is unknown while the root is relative.
    pub fn watch(&mut self) -> notify::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
        use notify::Watcher;
        self.watched_root = if self.root.is_absolute() {
            self.root.clone()
        } else {
            std::env::current_dir()?.join(&self.root)
        };
        // Until the first sync after this, every file is read.
        let pending = Arc::new(Mutex::new(Pending::Everything));
        self.pending = Some(pending.clone());
        let failed = self.watcher_failed.clone();
        let (tx, rx) = mpsc::channel(1);
        self.wake = Some(tx.clone());
        let handler = move |event: notify::Result<notify::Event>| {
            let mut pending = pending.lock().expect("pending changes lock");
            match event {
                Ok(event) if event.kind.is_access() => return,
                Ok(event) if !event.need_rescan() && !event.paths.is_empty() => {
                    if let Pending::Paths(paths) = &mut *pending {
                        paths.extend(event.paths);
                    }
                }
                Ok(_) => *pending = Pending::Everything,
                Err(err) => {
                    tracing::warn!(
                            "watching the config directory: {err}; from now on every change reads every file"
                        );
                    failed.store(true, Ordering::Relaxed);
                    *pending = Pending::Everything;
                }
            }
            drop(pending);
            // A full channel already holds a wake-up.
            let _ = tx.try_send(());
        };
        // Links to directories are not followed, as the full read does not
        // follow them (and removing one would drop the watch of its target).
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = notify::RecommendedWatcher::new(handler, config)?;
        watcher.watch(&self.root, notify::RecursiveMode::Recursive)?;
        Ok((watcher, rx))
    }
}

/// Whether `path` is named like a config file (`*.yaml`, `*.yml`).
fn is_config_file_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_name = entry.file_name();
        if file_name.to_string_lossy().starts_with('.') {
            continue; // editor swap files and hidden directories
        }
        if path.to_str().is_none() {
            // Its name would not be its own in messages and in the store.
            tracing::warn!(
                path = %path.display(),
                "not read: the path is not valid UTF-8"
            );
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect_yaml_files(&path, out)?;
        } else if is_config_file_name(&path) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
