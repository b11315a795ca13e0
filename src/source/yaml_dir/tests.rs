//! The file source against the platform's real watcher (inotify on Linux)
//! and real files in a temporary directory.

use super::*;
use crate::model::{Kind, Object, ObjectKey};
use std::time::Duration;

fn workload_entry(name: &str, address: &str) -> String {
    format!(
        "apiVersion: networking.sextant.dev/v1alpha1\nkind: WorkloadEntry\n\
         metadata: {{name: {name}, namespace: a}}\nspec: {{address: {address}}}\n"
    )
}

/// A new directory holding `files` (path below it, text), with the
/// directories on their paths.
fn filled(files: &[(&str, String)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = root.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    root
}

/// A watched config directory and the store it fills.
struct Watched {
    root: tempfile::TempDir,
    source: YamlDir,
    _watcher: notify::RecommendedWatcher,
    changes: mpsc::Receiver<()>,
    store: Store,
}

impl Watched {
    /// [`Watched::on`] a new directory [`filled`] with `files`.
    fn new(files: &[(&str, String)]) -> Self {
        Watched::on(filled(files))
    }

    /// Watches `root` (already filled) and reads every file once.
    fn on(root: tempfile::TempDir) -> Self {
        let mut source = YamlDir::new(root.path());
        let (watcher, changes) = source.watch().unwrap();
        let mut store = Store::new();
        let first = source.sync(&mut store).unwrap();
        assert!(first.read_every_file);
        Watched {
            root,
            source,
            _watcher: watcher,
            changes,
            store,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Saves `name` as editors do: a hidden temporary file renamed over it.
    fn save(&self, name: &str, text: &str) {
        let path = self.path(name);
        let file_name = path.file_name().unwrap().to_string_lossy();
        let tmp = path.with_file_name(format!(".{file_name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }

    /// Waits for the watcher's first wake-up (at most 5 s), then for 100 ms
    /// without one, then syncs, as `sextant serve` debounces.
    async fn settle(&mut self) -> SyncReport {
        tokio::time::timeout(Duration::from_secs(5), self.changes.recv())
            .await
            .expect("the watcher reported no change within 5 s");
        while let Ok(Some(())) =
            tokio::time::timeout(Duration::from_millis(100), self.changes.recv()).await
        {}
        self.source.sync(&mut self.store).unwrap()
    }

    /// The address of each served WorkloadEntry, by name.
    fn served(&self) -> BTreeMap<String, String> {
        self.store
            .world()
            .0
            .values()
            .filter_map(|object| match &**object {
                Object::WorkloadEntry(entry) => Some((
                    entry.metadata.name.clone().unwrap_or_default(),
                    entry.spec.address.clone(),
                )),
                _ => None,
            })
            .collect()
    }
}

fn served(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(n, a)| (n.to_string(), a.to_string()))
        .collect()
}

fn two_files() -> Watched {
    Watched::new(&[
        ("a.yaml", workload_entry("wa", "10.0.0.1")),
        ("b.yaml", workload_entry("wb", "10.0.0.2")),
    ])
}

#[tokio::test]
async fn an_editor_save_reads_only_the_saved_file() {
    let mut dir = two_files();
    dir.save("a.yaml", &workload_entry("wa", "10.0.0.9"));
    let report = dir.settle().await;
    assert!(report.changed);
    assert!(!report.read_every_file, "{report:?}");
    assert_eq!(report.files, [dir.path("a.yaml").display().to_string()]);
    assert_eq!(
        dir.served(),
        served(&[("wa", "10.0.0.9"), ("wb", "10.0.0.2")])
    );
}

#[tokio::test]
async fn a_removed_file_stops_being_served_and_a_new_one_is_read() {
    let mut dir = two_files();
    std::fs::remove_file(dir.path("b.yaml")).unwrap();
    std::fs::write(dir.path("c.yml"), workload_entry("wc", "10.0.0.3")).unwrap();
    let report = dir.settle().await;
    assert!(!report.read_every_file, "{report:?}");
    assert_eq!(
        dir.served(),
        served(&[("wa", "10.0.0.1"), ("wc", "10.0.0.3")])
    );
}

#[tokio::test]
async fn a_hidden_or_foreign_file_changes_nothing() {
    let mut dir = two_files();
    std::fs::write(dir.path(".a.yaml.swp"), workload_entry("wx", "10.0.0.7")).unwrap();
    std::fs::write(dir.path(".draft.yaml"), workload_entry("wy", "10.0.0.8")).unwrap();
    std::fs::write(dir.path("notes.txt"), "not config").unwrap();
    let report = dir.settle().await;
    assert!(!report.changed && report.files.is_empty(), "{report:?}");
    assert!(!report.read_every_file);
    assert_eq!(
        dir.served(),
        served(&[("wa", "10.0.0.1"), ("wb", "10.0.0.2")])
    );
}

#[tokio::test]
async fn a_directory_moved_in_or_out_is_read_whole() {
    let mut dir = two_files();
    // Built outside the root, then moved in: no event names its files.
    let outside = tempfile::tempdir().unwrap();
    let team = outside.path().join("team");
    std::fs::create_dir(&team).unwrap();
    std::fs::write(team.join("c.yaml"), workload_entry("wc", "10.0.0.3")).unwrap();
    std::fs::rename(&team, dir.path("team")).unwrap();
    let report = dir.settle().await;
    assert!(report.read_every_file, "{report:?}");
    assert_eq!(
        dir.served(),
        served(&[("wa", "10.0.0.1"), ("wb", "10.0.0.2"), ("wc", "10.0.0.3")])
    );

    std::fs::rename(dir.path("team"), &team).unwrap();
    let report = dir.settle().await;
    assert!(report.read_every_file, "{report:?}");
    assert_eq!(
        dir.served(),
        served(&[("wa", "10.0.0.1"), ("wb", "10.0.0.2")])
    );
}

/// A Kubernetes ConfigMap volume: each key is a link `x.yaml ->
/// ..data/x.yaml`, `..data` links to a hidden timestamped directory, and an
/// update writes a new directory and swaps `..data` by renaming a new link
/// over it. No event names `x.yaml`.
#[tokio::test]
async fn a_config_map_volume_update_is_read() {
    let root = filled(&[("..2026_11_30_1/mesh.yaml", workload_entry("wa", "10.0.0.1"))]);
    let at = |name: &str| root.path().join(name);
    std::os::unix::fs::symlink("..2026_11_30_1", at("..data")).unwrap();
    std::os::unix::fs::symlink("..data/mesh.yaml", at("mesh.yaml")).unwrap();
    let mut dir = Watched::on(root);
    assert_eq!(dir.served(), served(&[("wa", "10.0.0.1")]));

    let at = |name: &str| dir.path(name);
    std::fs::create_dir(at("..2026_11_30_2")).unwrap();
    std::fs::write(
        at("..2026_11_30_2/mesh.yaml"),
        workload_entry("wa", "10.0.0.5"),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_30_2", at("..data_tmp")).unwrap();
    std::fs::rename(at("..data_tmp"), at("..data")).unwrap();
    std::fs::remove_dir_all(at("..2026_11_30_1")).unwrap();
    let report = dir.settle().await;
    assert!(report.read_every_file, "{report:?}");
    assert_eq!(dir.served(), served(&[("wa", "10.0.0.5")]));
}

#[tokio::test]
async fn without_a_watcher_every_sync_reads_every_file() {
    let root = filled(&[("a.yaml", workload_entry("wa", "10.0.0.1"))]);
    let mut source = YamlDir::new(root.path());
    let mut store = Store::new();
    source.sync(&mut store).unwrap();
    std::fs::write(root.path().join("a.yaml"), workload_entry("wa", "10.0.0.4")).unwrap();
    let report = source.sync(&mut store).unwrap();
    assert!(report.read_every_file && report.changed, "{report:?}");
    let key = ObjectKey {
        kind: Kind::WorkloadEntry,
        namespace: "a".into(),
        name: "wa".into(),
    };
    let (world, _) = store.world();
    let Some(Object::WorkloadEntry(entry)) = world.get(&key).map(|o| &**o) else {
        panic!("wa is not served");
    };
    assert_eq!(entry.spec.address, "10.0.0.4");
}

/// A config file that links to a hidden file edited in place: the event
/// names only the hidden file, so every sync reads every file.
#[tokio::test]
async fn a_link_to_an_edited_hidden_file_is_read() {
    let root = filled(&[(".real.yaml", workload_entry("wa", "10.0.0.1"))]);
    std::os::unix::fs::symlink(".real.yaml", root.path().join("mesh.yaml")).unwrap();
    let mut dir = Watched::on(root);
    std::fs::write(dir.path(".real.yaml"), workload_entry("wa", "10.0.0.6")).unwrap();
    let report = dir.settle().await;
    assert!(report.read_every_file, "{report:?}");
    assert_eq!(dir.served(), served(&[("wa", "10.0.0.6")]));
}

/// A root given relative to the working directory (as `--config-dir
/// examples/x`): the watcher names absolute paths, which still count as
/// below the root.
#[tokio::test]
async fn a_relative_root_still_reads_only_the_saved_file() {
    let dir = two_files();
    let cwd = std::env::current_dir().unwrap();
    let up: PathBuf = cwd.components().skip(1).map(|_| "..").collect();
    let relative = up.join(dir.root.path().strip_prefix("/").unwrap());
    assert!(relative.is_relative());
    let mut source = YamlDir::new(&relative);
    let (_watcher, changes) = source.watch().unwrap();
    let mut dir = Watched {
        source,
        _watcher,
        changes,
        store: Store::new(),
        ..dir
    };
    dir.source.sync(&mut dir.store).unwrap();
    dir.save("a.yaml", &workload_entry("wa", "10.0.0.9"));
    let report = dir.settle().await;
    assert!(!report.read_every_file, "{report:?}");
    assert_eq!(
        report.files,
        [relative.join("a.yaml").display().to_string()]
    );
    assert_eq!(
        dir.served(),
        served(&[("wa", "10.0.0.9"), ("wb", "10.0.0.2")])
    );
}

/// A link to a directory inside the root: neither the full read nor the
/// watcher follows it (a watcher that did could name a file through the
/// link). The file is read once, under its real path, and its removal is
/// seen.
#[tokio::test]
async fn a_file_seen_through_a_linked_directory_is_read_under_its_real_path() {
    let root = filled(&[("real/a.yaml", workload_entry("wa", "10.0.0.1"))]);
    std::os::unix::fs::symlink("real", root.path().join("aalias")).unwrap();
    let mut dir = Watched::on(root);
    std::fs::write(dir.path("real/a.yaml"), workload_entry("wa", "10.0.0.2")).unwrap();
    dir.settle().await;
    assert_eq!(dir.served(), served(&[("wa", "10.0.0.2")]));
    let key = ObjectKey {
        kind: Kind::WorkloadEntry,
        namespace: "a".into(),
        name: "wa".into(),
    };
    let real = dir.path("real/a.yaml").display().to_string();
    assert_eq!(dir.store.origin_of(&key), Some(real.as_str()));

    std::fs::remove_file(dir.path("real/a.yaml")).unwrap();
    dir.settle().await;
    assert_eq!(dir.served(), served(&[]));
}

/// A linked directory outside the root is never read, edited or not (the
/// watcher does not follow the link; a save in the root wakes the sync).
#[tokio::test]
async fn a_linked_directory_outside_the_root_stays_unread_when_edited() {
    let outside = filled(&[("b.yaml", workload_entry("wb", "10.0.0.2"))]);
    let root = filled(&[("a.yaml", workload_entry("wa", "10.0.0.1"))]);
    std::os::unix::fs::symlink(outside.path(), root.path().join("ext")).unwrap();
    let mut dir = Watched::on(root);
    assert_eq!(dir.served(), served(&[("wa", "10.0.0.1")]));
    std::fs::write(
        outside.path().join("b.yaml"),
        workload_entry("wb", "10.0.0.9"),
    )
    .unwrap();
    dir.save("a.yaml", &workload_entry("wa", "10.0.0.3"));
    dir.settle().await;
    assert_eq!(dir.served(), served(&[("wa", "10.0.0.3")]));
}

/// Two names of one file (a hard link): a write through one changes the
/// other, which no event names.
#[tokio::test]
async fn every_name_of_a_hard_linked_file_is_read_again() {
    let root = filled(&[("a.yaml", workload_entry("wa", "10.0.0.1"))]);
    std::fs::hard_link(root.path().join("a.yaml"), root.path().join("0.yaml")).unwrap();
    let mut dir = Watched::on(root);
    // In place: the inode, and so the other name, stays.
    std::fs::write(dir.path("a.yaml"), workload_entry("wa", "10.0.0.2")).unwrap();
    let report = dir.settle().await;
    assert!(report.read_every_file, "{report:?}");
    // `0.yaml` comes first, so its definition is the one served.
    assert_eq!(dir.served(), served(&[("wa", "10.0.0.2")]));
}

/// Removing a link to a directory inside the root leaves the directory
/// watched (a watcher following links shares one watch between the link
/// and its target, and drops it with the link).
#[tokio::test]
async fn removing_a_link_to_a_directory_keeps_its_target_watched() {
    let root = filled(&[("real/a.yaml", workload_entry("wa", "10.0.0.1"))]);
    std::os::unix::fs::symlink("real", root.path().join("alias")).unwrap();
    let mut dir = Watched::on(root);
    std::fs::remove_file(dir.path("alias")).unwrap();
    dir.settle().await;
    dir.save("real/a.yaml", &workload_entry("wa", "10.0.0.2"));
    let report = dir.settle().await;
    assert!(!report.read_every_file, "{report:?}");
    assert_eq!(dir.served(), served(&[("wa", "10.0.0.2")]));
}

/// A file in a subdirectory is read by its own event, under the name the
/// full read gives it.
#[tokio::test]
async fn a_save_in_a_subdirectory_reads_only_that_file() {
    let mut dir = Watched::new(&[("team/x/a.yaml", workload_entry("wa", "10.0.0.1"))]);
    dir.save("team/x/a.yaml", &workload_entry("wa", "10.0.0.2"));
    let report = dir.settle().await;
    assert!(!report.read_every_file, "{report:?}");
    assert_eq!(
        report.files,
        [dir.path("team/x/a.yaml").display().to_string()]
    );
    assert_eq!(dir.served(), served(&[("wa", "10.0.0.2")]));
}

/// A new directory, filled at once: the watcher watches it only after its
/// event, so the sync that event causes is followed by one more full read,
/// which finds files that had no event of their own.
#[tokio::test]
async fn a_new_directory_is_read_again_after_its_event() {
    let mut dir = two_files();
    std::fs::create_dir(dir.path("team")).unwrap();
    std::fs::write(dir.path("team/c.yaml"), workload_entry("wc", "10.0.0.3")).unwrap();
    let first = dir.settle().await;
    assert!(first.read_every_file, "{first:?}");
    let second = dir.settle().await;
    assert!(second.read_every_file, "{second:?}");
    assert_eq!(
        dir.served(),
        served(&[("wa", "10.0.0.1"), ("wb", "10.0.0.2"), ("wc", "10.0.0.3")])
    );
}

/// A second name made for a file after the first read: from then on every
/// sync reads every file.
#[tokio::test]
async fn a_hard_link_made_later_is_noticed() {
    let mut dir = two_files();
    std::fs::hard_link(dir.path("a.yaml"), dir.path("0.yaml")).unwrap();
    let report = dir.settle().await;
    assert!(report.read_every_file, "{report:?}");
    dir.settle().await; // the follow-up full read
    std::fs::write(dir.path("a.yaml"), workload_entry("wa", "10.0.0.7")).unwrap();
    let report = dir.settle().await;
    assert!(report.read_every_file, "{report:?}");
    assert_eq!(
        dir.served(),
        served(&[("wa", "10.0.0.7"), ("wb", "10.0.0.2")])
    );
}
