//! Fuzz target `edge_line`: see `proviso::fuzzing::edge_line` (the corpus replay in
//! `tests/fuzz_corpus.rs` calls the same function).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proviso::fuzzing::edge_line(data));
