//! Which files a sync reads again, and that skipping a read never misses
//! a change.

use super::*;
use std::time::Duration;

/// A Service `a` with one port: the same length for every two-digit port.
fn service(port: u16) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: a, namespace: default}}\nspec:\n  ports: [{{port: {port}}}]\n")
}

/// Long enough for file timestamps to move on (the kernel's clock tick).
fn next_tick() {
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn a_file_just_written_is_read_again_at_the_next_sync() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.yaml"), service(80)).unwrap();
    let mut dir = YamlDir::new(root.path());
    let mut store = Store::new();
    let first = dir.sync(&mut store).unwrap();
    assert!(first.changed);
    assert_eq!(first.read, 1);
    // Written within the last 2 s: a write in the same clock tick could
    // have left its metadata as it is, so only its content can tell.
    let second = dir.sync(&mut store).unwrap();
    assert_eq!(second.read, 1);
    assert!(!second.changed);
}

#[test]
fn a_settled_file_is_read_again_only_when_its_metadata_changes() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("a.yaml");
    std::fs::write(&path, service(80)).unwrap();
    std::fs::write(
        root.path().join("b.yaml"),
        service(10).replace("name: a", "name: b"),
    )
    .unwrap();
    let mut dir = YamlDir::new(root.path());
    dir.settled = Duration::ZERO;
    let mut store = Store::new();
    assert_eq!(dir.sync(&mut store).unwrap().read, 2);
    next_tick();
    let unchanged = dir.sync(&mut store).unwrap();
    assert_eq!((unchanged.read, unchanged.changed), (0, false));

    // The same length, so only the timestamps tell.
    std::fs::write(&path, service(81)).unwrap();
    let edited = dir.sync(&mut store).unwrap();
    assert_eq!(edited.read, 1, "only the edited file");
    assert!(edited.changed);
    assert_eq!(edited.files, [path.display().to_string()]);
    let (world, _) = store.world();
    let served = world
        .values()
        .find_map(|o| match o.as_ref() {
            crate::model::Object::Service(s) if s.metadata.name.as_deref() == Some("a") => {
                Some(s.spec.as_ref()?.ports.as_ref()?[0].port)
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(served, 81);

    // A deleted file is noticed without reading anything.
    next_tick();
    std::fs::remove_file(&path).unwrap();
    let removed = dir.sync(&mut store).unwrap();
    assert_eq!(removed.read, 0);
    assert!(removed.changed);
    assert_eq!(removed.files, [path.display().to_string()]);
}
