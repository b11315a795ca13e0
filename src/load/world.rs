//! The synthetic world the load runs against (see [`crate::synth`]), kept
//! in memory as the YAML text of each namespace file, and the edits the
//! scenarios make to it: moving a WorkloadEntry to a new address, changing
//! a VirtualService's weights.
//!
//! Files are written atomically (a temporary name without a YAML extension,
//! then a rename), so the server's watcher never reads half a file.

use super::LoadError;
use crate::synth::{generate, WorldSpec};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The world of a load run.
#[derive(Debug)]
pub struct World {
    dir: PathBuf,
    spec: WorldSpec,
    /// `(file name, current text)`, one per namespace, `ns-<k>.yaml`.
    files: Vec<(String, String)>,
    /// The text each file had before the run, to restore in a directory
    /// the tool did not create.
    original: Vec<String>,
    /// Moved endpoints get `11.x.y.z` addresses, numbered from here.
    next_address: u32,
    /// Outbound clusters the world's IR has.
    pub clusters: usize,
    /// WorkloadEntries (endpoints) of the world.
    pub endpoints: usize,
}

impl World {
    /// Generates `spec` and writes it into `dir` (which must exist).
    ///
    /// # Errors
    /// [`LoadError::File`] when a file cannot be written.
    pub fn write(dir: &Path, spec: WorldSpec) -> Result<World, LoadError> {
        let world = World::new(dir, spec);
        for k in 0..world.files.len() {
            world.flush(k)?;
        }
        Ok(world)
    }

    /// Takes over a directory that already holds the world of `spec` (as
    /// `sextant synth` with the same flags writes it), for a server the tool
    /// did not start. [`World::restore`] puts the files back.
    ///
    /// # Errors
    /// [`LoadError::World`] naming the first file that differs.
    pub fn adopt(dir: &Path, spec: WorldSpec) -> Result<World, LoadError> {
        let world = World::new(dir, spec);
        for (name, text) in &world.files {
            let path = dir.join(name);
            let found = std::fs::read_to_string(&path).map_err(LoadError::file(&path))?;
            if &found != text {
                return Err(LoadError::World(format!(
                    "{} differs from `sextant synth` with these flags (services, namespaces, endpoints, seed)",
                    path.display()
                )));
            }
        }
        Ok(world)
    }

    fn new(dir: &Path, spec: WorldSpec) -> World {
        let generated = generate(&spec);
        World {
            dir: dir.to_path_buf(),
            original: generated.files.iter().map(|(_, t)| t.clone()).collect(),
            files: generated.files,
            next_address: 1,
            clusters: generated.counts.clusters,
            endpoints: generated.counts.workload_entries,
            spec,
        }
    }

    /// The spec the world was generated from.
    pub fn spec(&self) -> &WorldSpec {
        &self.spec
    }

    /// Writes every file back as it was before the run.
    ///
    /// # Errors
    /// [`LoadError::File`] when a file cannot be written.
    pub fn restore(&mut self) -> Result<(), LoadError> {
        for k in 0..self.files.len() {
            if self.files[k].1 != self.original[k] {
                self.files[k].1 = self.original[k].clone();
                self.flush(k)?;
            }
        }
        Ok(())
    }

    /// The namespace of service `i` (`ns-<i mod namespaces>`).
    pub fn namespace_of(&self, service: usize) -> String {
        format!("ns-{}", service % self.spec.namespaces)
    }

    /// The cluster (and ClusterLoadAssignment) of port 80 of service `i`,
    /// for all its endpoints (`subset` `None`) or one subset.
    pub fn cluster(&self, service: usize, subset: Option<&str>) -> String {
        format!(
            "outbound|80|{}|svc-{service}.{}.svc.cluster.local",
            subset.unwrap_or(""),
            self.namespace_of(service)
        )
    }

    /// Moves endpoint `e` of service `i` to a new, unused address, in
    /// memory; returns the file to [`World::flush`] and the new address.
    ///
    /// # Errors
    /// [`LoadError::World`] when the WorkloadEntry is not in its file.
    pub fn move_endpoint(
        &mut self,
        service: usize,
        e: usize,
    ) -> Result<(usize, Ipv4Addr), LoadError> {
        let k = service % self.spec.namespaces;
        let needle =
            format!("metadata: {{name: svc-{service}-{e}, namespace: ns-{k}}}\nspec:\n  address: ");
        let text = &mut self.files[k].1;
        let start = text.find(&needle).ok_or_else(|| {
            LoadError::World(format!("no WorkloadEntry svc-{service}-{e} in ns-{k}.yaml"))
        })? + needle.len();
        let end = start + text[start..].find('\n').unwrap_or(text.len() - start);
        let [_, a, b, c] = self.next_address.to_be_bytes();
        self.next_address += 1;
        let address = Ipv4Addr::new(11, a, b, c);
        text.replace_range(start..end, &address.to_string());
        Ok((k, address))
    }

    /// The first service with a VirtualService that splits its default
    /// route over two subsets by weight, at or after service `from`.
    pub fn weighted_service(&self, from: usize) -> Option<usize> {
        (from..self.spec.services).find(|&i| self.weights(i).is_some_and(|w| w.len() == 2))
    }

    fn vs_block(&self, service: usize) -> Option<(usize, usize, usize)> {
        let k = service % self.spec.namespaces;
        let text = &self.files[k].1;
        let head =
            format!("kind: VirtualService\nmetadata: {{name: svc-{service}, namespace: ns-{k}}}\n");
        let start = text.find(&head)?;
        let end = text[start..]
            .find("---\n")
            .map_or(text.len(), |n| start + n);
        Some((k, start, end))
    }

    fn weights(&self, service: usize) -> Option<Vec<u32>> {
        let (k, start, end) = self.vs_block(service)?;
        Some(
            self.files[k].1[start..end]
                .lines()
                .filter_map(|l| l.trim().strip_prefix("weight: "))
                .filter_map(|w| w.parse().ok())
                .collect(),
        )
    }

    /// Shifts ten points of weight between the two subsets of service `i`'s
    /// VirtualService, in memory; returns the file to [`World::flush`] and
    /// the new weight of subset `v1`.
    ///
    /// # Errors
    /// [`LoadError::World`] when the service has no two-way weighted route.
    pub fn shift_weight(&mut self, service: usize) -> Result<(usize, u32), LoadError> {
        let missing = || {
            LoadError::World(format!(
                "svc-{service} has no VirtualService with two weights"
            ))
        };
        let old = self
            .weights(service)
            .filter(|w| w.len() == 2)
            .ok_or_else(missing)?;
        let v1 = if old[0] > 50 {
            old[0] - 10
        } else {
            old[0] + 10
        };
        let new = [v1, 100 - v1];
        let (k, start, end) = self.vs_block(service).ok_or_else(missing)?;
        let mut n = 0;
        let block: Vec<String> = self.files[k].1[start..end]
            .split_inclusive('\n')
            .map(|line| match line.trim().strip_prefix("weight: ") {
                Some(_) => {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    let replaced = format!("{indent}weight: {}\n", new[n.min(1)]);
                    n += 1;
                    replaced
                }
                None => line.to_string(),
            })
            .collect();
        self.files[k].1.replace_range(start..end, &block.concat());
        Ok((k, v1))
    }

    /// Writes file `k` atomically; returns when the rename is done.
    ///
    /// # Errors
    /// [`LoadError::File`] when the file cannot be written.
    pub fn flush(&self, k: usize) -> Result<Instant, LoadError> {
        let (name, text) = &self.files[k];
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).map_err(LoadError::file(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(LoadError::file(&path))?;
        Ok(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorldSpec {
        WorldSpec {
            services: 20,
            namespaces: 2,
            ..WorldSpec::default()
        }
    }

    #[test]
    fn edits_change_exactly_what_they_say() {
        let dir = tempfile::tempdir().unwrap();
        let mut world = World::write(dir.path(), spec()).unwrap();
        let (k, address) = world.move_endpoint(3, 1).unwrap();
        assert_eq!(k, 1);
        assert!(world.files[1].1.contains(&format!("address: {address}\n")));
        let i = world.weighted_service(0).expect("a weighted service");
        let before = world.weights(i).unwrap();
        let (_, v1) = world.shift_weight(i).unwrap();
        let after = world.weights(i).unwrap();
        assert_ne!(before, after);
        assert_eq!(after, vec![v1, 100 - v1]);
        // The edited world still loads without a diagnostic.
        let mut store = crate::store::Store::new();
        for (name, text) in &world.files {
            store.apply(name, crate::source::parse::parse_documents(name, text));
        }
        let (_, diagnostics) = crate::ir::resolve(&store);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        world.restore().unwrap();
        assert!(World::adopt(dir.path(), spec()).is_ok());
    }
}
