//! What proviso asks of the C allocator (glibc) around start-up.
//!
//! Owns: the mmap threshold while state loads and after, and handing freed
//! pages back once start-up is over and whenever the server falls idle.
//! Never: changes how anything is allocated in Rust terms (the global
//! allocator stays the system's), or runs on anything but Linux with glibc
//! (elsewhere both calls do nothing).
//!
//! Why: glibc raises its mmap threshold each time it frees a mapped chunk
//! (up to 32 MiB). Loading a snapshot frees many large temporaries (the
//! file's bytes, each section's decoded form before it is packed), so after
//! the first of them every later one up to that size is carved from the
//! arena, between the small allocations that stay, and its pages cannot be
//! given back once it is freed. On the partner workload that left about
//! 14 MiB of holes in a served node of 126 MiB (bench/README.md,
//! "Memory and the 4× ingest: the allocator, the log's page cache, the
//! phone cache").

/// Largest allocation served from the arena while state loads: glibc's own
/// starting value, held fixed, so a large temporary gets its own mapping
/// and its pages go back to the system whole when it is freed.
const LOADING_MMAP_THRESHOLD: i32 = 128 * 1024;

/// The threshold from then on: above the largest buffer ingest reuses (its
/// 4 MiB chunks and request bodies), so those keep being recycled in the
/// arena instead of mapped and faulted in afresh each time, as glibc's
/// rising threshold would have them after the first one.
const RUNNING_MMAP_THRESHOLD: i32 = 16 * 1024 * 1024;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    pub fn set_mmap_threshold(bytes: i32) {
        // SAFETY: mallopt takes two integers and only changes the
        // allocator's tuning; an out-of-range value is refused (returns 0).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        }
    }

    pub fn trim() {
        // SAFETY: malloc_trim takes a byte count and only returns the
        // allocator's own free pages to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    pub fn set_mmap_threshold(_bytes: i32) {}
    pub fn trim() {}
}

/// Before state loads: large temporaries get their own mappings.
pub(super) fn loading() {
    glibc::set_mmap_threshold(LOADING_MMAP_THRESHOLD);
}

/// Once start-up is over: hands the pages the allocator holds free back to
/// the system (loading a snapshot and replaying the log free nearly as much
/// as they keep, and glibc keeps freed pages in its arenas), then lets
/// ingest's buffers be recycled in the arena.
pub(super) fn running() {
    glibc::trim();
    glibc::set_mmap_threshold(RUNNING_MMAP_THRESHOLD);
}

/// Hands the pages the allocator holds free back to the system. The server
/// calls it on a quiet second after a burst (`server::trim_when_idle`):
/// suggestions, audiences and disclosures free their working memory when
/// they answer, and glibc would keep those pages in its arenas; on the
/// partner workload that was 3 to 4 MiB of a served node's 97
/// (bench/README.md, "Memory of a served node, continued").
pub fn give_back() {
    glibc::trim();
}
