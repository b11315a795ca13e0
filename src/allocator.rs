//! The allocator of the `sextant` binary (and of the benches, so that their
//! figures are the server's): jemalloc, with a background thread that returns
//! pages left unused to the system within about a second.
//!
//! Why: the server's heap churns in bursts. A SotW ACK naming every cluster
//! (about 360 KB at 6,000 clusters) is read into a buffer and freed; a push
//! encodes response frames and frees them once written. With glibc's malloc
//! those freed pages mostly stay resident (its heap only shrinks from the top,
//! and its `mmap` threshold grows to the largest buffer freed), so resident
//! memory per connected proxy was about 100-155 KB beyond the shared
//! snapshot, of which heaptrack found about 50 KB live (h2's two 16 KiB
//! connection buffers, the codec's read buffer, the stream task). jemalloc
//! with `dirty_decay_ms:1000` and `muzzy_decay_ms:0` purges what stays
//! unused, gradually over about a second, from its own thread, off the
//! serving path; it also allocates the IR's many small strings faster.
//! Figures: BENCHMARKS.md, "The allocator".
//!
//! `_RJEM_MALLOC_CONF` in the environment still overrides these settings
//! (jemalloc reads it after this string).

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its initialization through the C symbol
/// `const char *malloc_conf` (prefixed `_rjem_` in `tikv-jemalloc-sys`'s
/// build): purging on a background thread, unused dirty pages purged
/// gradually over 1,000 ms, no lazy (muzzy) stage.
#[unsafe(export_name = "_rjem_malloc_conf")]
#[allow(non_upper_case_globals)]
static malloc_conf: Conf =
    Conf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string pointer that may be a `static` (it points to a literal).
#[repr(transparent)]
struct Conf(*const std::ffi::c_char);

// SAFETY: the pointer is to an immutable `'static` literal; nothing writes it.
unsafe impl Sync for Conf {}
