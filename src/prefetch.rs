//! A hint to the processor: start bringing a value's cache line in.
//!
//! Owns: the one `unsafe` prefetch instruction the hash tables share (the
//! subject registry's index in `state/`, the phone cache in `edge/`), so a
//! lookup of many keys can overlap their cache misses.
//! Never: reads, writes or faults; anything a program can observe but time.

/// Starts bringing `value`'s cache line in, without waiting for it.
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and never writes; the
    // pointer comes from a reference, and SSE is part of x86_64.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
