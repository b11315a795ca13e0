//! Encoded `resources` sections of responses, shared between streams.
//!
//! Every stream of a proxy class that is sent the whole of one of its
//! snapshot's maps (a cold sync, a SotW push of a changed type) sends the
//! same `resources` fields: only the other fields of the message (version,
//! nonce) are its own. Writing those fields costs per resource (the entry's
//! head, the copy of a small body into a chunk, walking the map): roughly
//! 40 % of the server's CPU in a cold sync of 100 delta proxies at 10,000
//! services, before this module. So the first stream to send a large map
//! encodes its section once, as chunks, when it starts sending it (outside
//! the stream's lock), and the streams after it send those chunks.
//! Responses that send a part of a map, or maps of one proxy (the naive
//! baseline), do not come here.
//!
//! An entry keeps its map (and so the snapshot's resources) alive until it
//! is evicted: there are at most [`ENTRIES`], holding at most [`MAX_BYTES`]
//! of sections (counted before they are written), the least recently used
//! evicted first; only maps of at least [`MIN_RESOURCES`] resources are
//! kept (a smaller one is cheap to write again). An entry not used for
//! [`MAX_IDLE`] is dropped by the server's sweep ([`SectionCache::expire_idle`],
//! every [`SWEEP_INTERVAL`]), so an idle mesh does not keep old maps alive.
//! A map is recognised by
//! identity (`imbl`'s `ptr_eq`: the same root node, which an entry's own
//! handle keeps from being reused or changed in place), never by comparing
//! contents.

use super::wire::Layout;
use crate::cache::ResourceMap;
use crate::envoy::TypeUrl;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Maps of fewer resources are not kept: their sections are written per
/// stream.
pub(crate) const MIN_RESOURCES: usize = 64;
/// Sections kept at most (a type of every class synced at the same time
/// shares one when the classes share the map, as they do their clusters).
pub(crate) const ENTRIES: usize = 16;
/// Bytes of sections kept at most, counted before they are written: 64 MiB
/// (a cold sync at 10,000 services keeps about 30 MB: the clusters' and the
/// endpoints' sections).
pub(crate) const MAX_BYTES: usize = 64 << 20;

/// An entry unused for this long is dropped by the sweep: 60 s.
pub(crate) const MAX_IDLE: Duration = Duration::from_secs(60);
/// How often the server sweeps idle entries: every 30 s.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// A `resources` section: the encoded fields, as the chunks to send.
#[derive(Debug)]
pub(crate) struct Section {
    /// The chunks, in order (copied heads and small bodies, shared large
    /// bodies).
    pub(crate) chunks: Vec<Bytes>,
    /// Bytes of all chunks.
    pub(crate) len: usize,
    /// Bytes of the resources' own encodings (the `Any` values) in it.
    pub(crate) resource_bytes: usize,
}

/// One kept section.
#[derive(Debug)]
struct Entry {
    type_url: TypeUrl,
    layout: Layout,
    map: ResourceMap,
    /// Bytes of the section, known before it is written.
    size: usize,
    section: Arc<OnceLock<Arc<Section>>>,
    /// When a stream last asked for it.
    used: Instant,
}

/// The sections kept by the process, least recently used first.
#[derive(Debug)]
pub(crate) struct SectionCache {
    entries: Mutex<VecDeque<Entry>>,
    /// [`MAX_BYTES`], but in tests.
    max_bytes: usize,
}

impl Default for SectionCache {
    fn default() -> Self {
        SectionCache {
            entries: Mutex::default(),
            max_bytes: MAX_BYTES,
        }
    }
}

/// The entry of `map` for `type_url` in `layout`, moved to the back (most
/// recently used).
fn touch<'a>(
    entries: &'a mut VecDeque<Entry>,
    type_url: TypeUrl,
    layout: Layout,
    map: &ResourceMap,
) -> Option<&'a Entry> {
    let at = entries
        .iter()
        .position(|e| e.type_url == type_url && e.layout == layout && e.map.ptr_eq(map))?;
    let mut entry = entries.remove(at).expect("found");
    entry.used = Instant::now();
    entries.push_back(entry);
    entries.back()
}

/// Stops the sweep of [`SectionCache::sweep_process_cache`] when dropped.
#[derive(Debug)]
pub(crate) struct SweepGuard(tokio::task::JoinHandle<()>);

impl Drop for SweepGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The process's cache (sections are keyed by map identity, so servers in
/// one process, as in tests, never see each other's).
pub(crate) static SECTIONS: LazyLock<SectionCache> = LazyLock::new(SectionCache::default);

impl SectionCache {
    /// The section of `map` for `type_url` in `layout`, of `size` bytes:
    /// the one kept, or the one `encode` writes now, which is then kept.
    /// `None` when the map is too small to keep or its section larger than
    /// the whole budget, or while another stream is writing its section
    /// (the caller then writes its own as it sends, rather than wait).
    pub(crate) fn section(
        &self,
        type_url: TypeUrl,
        layout: Layout,
        map: &ResourceMap,
        size: usize,
        encode: impl FnOnce() -> Section,
    ) -> Option<Arc<Section>> {
        if map.len() < MIN_RESOURCES || size > self.max_bytes {
            return None;
        }
        // Evicted entries are dropped after the lock: the last handle on an
        // old map frees its resources.
        let mut evicted = Vec::new();
        let slot = {
            let mut entries = self.entries.lock().expect("sections lock");
            if let Some(entry) = touch(&mut entries, type_url, layout, map) {
                return entry.section.get().cloned();
            }
            let slot = Arc::new(OnceLock::new());
            let kept = |entries: &VecDeque<Entry>| entries.iter().map(|e| e.size).sum::<usize>();
            while entries.len() >= ENTRIES || kept(&entries) + size > self.max_bytes {
                evicted.extend(entries.pop_front());
            }
            entries.push_back(Entry {
                type_url,
                layout,
                map: map.clone(),
                size,
                section: slot.clone(),
                used: Instant::now(),
            });
            slot
        };
        drop(evicted);
        let section = slot.get_or_init(|| Arc::new(encode())).clone();
        debug_assert_eq!(section.len, size);
        Some(section)
    }

    /// The section of `map` for `type_url` in `layout` when it is kept
    /// and written (then it counts as used now).
    pub(crate) fn kept(
        &self,
        type_url: TypeUrl,
        layout: Layout,
        map: &ResourceMap,
    ) -> Option<Arc<Section>> {
        if map.len() < MIN_RESOURCES {
            return None;
        }
        let mut entries = self.entries.lock().expect("sections lock");
        touch(&mut entries, type_url, layout, map)?
            .section
            .get()
            .cloned()
    }

    /// Drops the entries no stream asked for in the `max_idle` before
    /// `now`, with the maps they keep alive; returns how many.
    pub(crate) fn expire_idle(&self, now: Instant, max_idle: Duration) -> usize {
        let expired = {
            let mut entries = self.entries.lock().expect("sections lock");
            let (idle, kept): (VecDeque<Entry>, VecDeque<Entry>) = std::mem::take(&mut *entries)
                .into_iter()
                .partition(|e| now.saturating_duration_since(e.used) > max_idle);
            *entries = kept;
            idle
        };
        // Dropped after the lock: the last handle on a map frees it.
        expired.len()
    }

    /// Sweeps [`SECTIONS`] every [`SWEEP_INTERVAL`] for entries idle over
    /// [`MAX_IDLE`], until the returned guard is dropped.
    pub(crate) fn sweep_process_cache() -> SweepGuard {
        SweepGuard(tokio::spawn(async {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let expired = SECTIONS.expire_idle(Instant::now(), MAX_IDLE);
                if expired > 0 {
                    tracing::debug!(expired, "dropped idle shared response sections");
                }
            }
        }))
    }

    /// A cache that evicts past `max_bytes` of sections.
    #[cfg(test)]
    pub(crate) fn with_max_bytes(max_bytes: usize) -> Self {
        SectionCache {
            max_bytes,
            ..SectionCache::default()
        }
    }

    /// Sections kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().expect("sections lock").len()
    }
}
