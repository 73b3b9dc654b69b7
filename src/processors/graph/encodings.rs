//! `proviso bench books`: the address books of a real data dir held in each
//! candidate encoding, with the allocator's own count of the bytes each
//! takes and the time of a membership test and of a full iteration.
//!
//! Owns: building the candidates from a graph and timing them on the same
//! probes (their answers must agree, or the report says so).
//! Never: changes the graph, or runs on the serving path.

use std::collections::HashMap;
use std::time::Instant;

use roaring::RoaringBitmap;
use serde::Serialize;

use super::books::{encode_book, Book, BLOCK};
use super::Graph;

/// Bytes the allocator has handed out and not taken back (glibc's
/// `mallinfo2`: small chunks plus mmapped ones, headers and rounding
/// included). `None` on other platforms.
fn allocated_bytes() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[repr(C)]
        struct MallInfo2 {
            arena: usize,
            ordblks: usize,
            smblks: usize,
            hblks: usize,
            hblkhd: usize,
            usmblks: usize,
            fsmblks: usize,
            uordblks: usize,
            fordblks: usize,
            keepcost: usize,
        }
        extern "C" {
            fn mallinfo2() -> MallInfo2;
        }
        // SAFETY: mallinfo2 takes no arguments and only reads the
        // allocator's statistics (glibc 2.33 and later).
        let info = unsafe { mallinfo2() };
        Some(info.uordblks + info.hblkhd)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// The books' shape on this data dir.
#[derive(Debug, Serialize)]
pub struct BookShape {
    pub subjects: usize,
    pub owners: usize,
    pub contacts: usize,
    pub median_book: usize,
    pub mean_book: f64,
    pub largest_book: usize,
    /// Share of gaps (contact minus previous contact) that fit one, two,
    /// three varint bytes.
    pub gaps_one_byte: f64,
    pub gaps_two_bytes: f64,
    pub gaps_three_or_more_bytes: f64,
}

/// One candidate encoding.
#[derive(Debug, Serialize)]
pub struct Candidate {
    pub name: String,
    /// Allocator bytes while the candidate is held (mallinfo2 difference).
    pub allocated_bytes: Option<usize>,
    pub allocated_bytes_per_contact: Option<f64>,
    pub allocated_bytes_per_subject: Option<f64>,
    /// Mean time of one membership test over the probes (best of 3 passes).
    pub contains_ns: f64,
    /// Time per contact of iterating every book in order (best of 3 passes).
    pub iterate_ns_per_contact: f64,
    /// The answers agree with the sorted lists.
    pub agrees: bool,
}

#[derive(Debug, Serialize)]
pub struct EncodingsReport {
    pub shape: BookShape,
    pub probes: usize,
    pub seed: u64,
    pub candidates: Vec<Candidate>,
}

/// Builds each candidate from `graph`'s books (registry of `subjects`),
/// times `probes` membership tests (half members, half random subjects)
/// and a full iteration, and counts the allocator's bytes for each.
pub fn measure(graph: &Graph, subjects: usize, probes: usize, seed: u64) -> EncodingsReport {
    let lists: Vec<(u32, Vec<u32>)> = graph.books().map(|(owner, book)| (owner, book.iter().collect())).collect();
    let contacts: usize = lists.iter().map(|(_, list)| list.len()).sum();
    let mut sizes: Vec<usize> = lists.iter().map(|(_, list)| list.len()).collect();
    sizes.sort_unstable();
    let mut gap_bytes = [0usize; 3];
    for (_, list) in &lists {
        for pair in list.windows(2) {
            let gap = pair[1] - pair[0] - 1;
            gap_bytes[if gap < 1 << 7 {
                0
            } else if gap < 1 << 14 {
                1
            } else {
                2
            }] += 1;
        }
    }
    let gaps = gap_bytes.iter().sum::<usize>().max(1) as f64;
    let shape = BookShape {
        subjects,
        owners: lists.len(),
        contacts,
        median_book: sizes.get(sizes.len() / 2).copied().unwrap_or(0),
        mean_book: contacts as f64 / lists.len().max(1) as f64,
        largest_book: sizes.last().copied().unwrap_or(0),
        gaps_one_byte: gap_bytes[0] as f64 / gaps,
        gaps_two_bytes: gap_bytes[1] as f64 / gaps,
        gaps_three_or_more_bytes: gap_bytes[2] as f64 / gaps,
    };

    let mut rng = fastrand::Rng::with_seed(seed);
    let probe_list: Vec<(u32, u32)> = (0..probes)
        .filter_map(|i| {
            let (owner, list) = &lists.get(rng.usize(..lists.len().max(1)))?;
            let other = if i % 2 == 0 { list[rng.usize(..list.len())] } else { rng.u32(..subjects.max(1) as u32) };
            Some((*owner, other))
        })
        .collect();
    let expected_hits = probe_list
        .iter()
        .filter(|(owner, other)| {
            lists.binary_search_by_key(owner, |(o, _)| *o).is_ok_and(|at| lists[at].1.binary_search(other).is_ok())
        })
        .count();
    let expected_sum: u64 = lists.iter().flat_map(|(_, list)| list.iter()).map(|&c| u64::from(c)).sum();
    let slots = lists.last().map_or(0, |(owner, _)| *owner as usize + 1);

    let mut candidates = Vec::new();
    let mut judge =
        |name: &str, allocated: Option<usize>, contains: &dyn Fn(u32, u32) -> bool, sum: &dyn Fn() -> u64| {
            let (mut best_contains, mut best_iterate) = (f64::MAX, f64::MAX);
            let mut agrees = true;
            for _ in 0..3 {
                let started = Instant::now();
                let hits = probe_list.iter().filter(|&&(owner, other)| contains(owner, other)).count();
                best_contains = best_contains.min(started.elapsed().as_nanos() as f64 / probe_list.len().max(1) as f64);
                let started = Instant::now();
                let total = sum();
                best_iterate = best_iterate.min(started.elapsed().as_nanos() as f64 / contacts.max(1) as f64);
                agrees &= hits == expected_hits && total == expected_sum;
            }
            candidates.push(Candidate {
                name: name.to_string(),
                allocated_bytes: allocated,
                allocated_bytes_per_contact: allocated.map(|bytes| bytes as f64 / contacts.max(1) as f64),
                allocated_bytes_per_subject: allocated.map(|bytes| bytes as f64 / subjects.max(1) as f64),
                contains_ns: best_contains,
                iterate_ns_per_contact: best_iterate,
                agrees,
            });
        };
    let since = |before: Option<usize>| Some(allocated_bytes()?.saturating_sub(before?));

    // The layout before: a hash map of boxed sorted u32 lists.
    let before = allocated_bytes();
    let map: HashMap<u32, Box<[u32]>, foldhash::fast::RandomState> =
        lists.iter().map(|(owner, list)| (*owner, list.clone().into_boxed_slice())).collect();
    let allocated = since(before);
    judge(
        "u32 lists in a hash map (before)",
        allocated,
        &|owner, other| map.get(&owner).is_some_and(|list| list.binary_search(&other).is_ok()),
        &|| map.values().flat_map(|list| list.iter()).map(|&c| u64::from(c)).sum(),
    );
    drop(map);

    // A roaring bitmap per owner, in a dense vector.
    let before = allocated_bytes();
    let mut bitmaps: Vec<RoaringBitmap> = Vec::with_capacity(slots);
    bitmaps.resize_with(slots, RoaringBitmap::new);
    for (owner, list) in &lists {
        let bitmap = RoaringBitmap::from_sorted_iter(list.iter().copied()).unwrap_or_default();
        bitmaps[*owner as usize] = bitmap;
    }
    let allocated = since(before);
    judge(
        "roaring bitmap per owner, dense vector",
        allocated,
        &|owner, other| bitmaps.get(owner as usize).is_some_and(|bitmap| bitmap.contains(other)),
        &|| bitmaps.iter().flat_map(|bitmap| bitmap.iter()).map(u64::from).sum(),
    );
    drop(bitmaps);

    // Packed books (`books::encode_book`), one boxed byte slice per owner.
    let before = allocated_bytes();
    let mut boxed: Vec<Option<Box<[u8]>>> = Vec::with_capacity(slots);
    boxed.resize_with(slots, || None);
    let mut scratch = Vec::new();
    for (owner, list) in &lists {
        scratch.clear();
        encode_book::<BLOCK>(list, &mut scratch);
        boxed[*owner as usize] = Some(scratch.as_slice().into());
    }
    drop(scratch);
    let allocated = since(before);
    judge(
        &format!("selector gaps, boxed per owner (skip every {BLOCK})"),
        allocated,
        &|owner, other| {
            boxed
                .get(owner as usize)
                .and_then(Option::as_deref)
                .is_some_and(|bytes| Book::<BLOCK>::at(bytes).contains(other))
        },
        &|| boxed.iter().flatten().flat_map(|bytes| Book::<BLOCK>::at(bytes).iter()).map(u64::from).sum(),
    );
    drop(boxed);

    macro_rules! arena {
        ($block:literal) => {{
            let before = allocated_bytes();
            let mut starts = vec![0u32; slots];
            let mut arena = Vec::new();
            for (owner, list) in &lists {
                starts[*owner as usize] = arena.len() as u32 + 1;
                encode_book::<$block>(list, &mut arena);
            }
            arena.shrink_to_fit();
            let allocated = since(before);
            let book = |owner: u32| match starts.get(owner as usize) {
                Some(&start) if start > 0 => Book::<$block>::at(&arena[start as usize - 1..]),
                _ => Book::<$block>::EMPTY,
            };
            judge(
                concat!("selector gaps in one arena, skip every ", $block),
                allocated,
                &|owner, other| book(owner).contains(other),
                &|| (0..slots as u32).flat_map(|owner| book(owner).iter()).map(u64::from).sum(),
            );
        }};
    }
    arena!(16);
    arena!(32);
    arena!(64);
    arena!(128);
    arena!(1_000_000);

    EncodingsReport { shape, probes: probe_list.len(), seed, candidates }
}
