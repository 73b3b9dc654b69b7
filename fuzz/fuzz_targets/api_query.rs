//! Fuzz target `api_query`: see `proviso::fuzzing::api_query` (the corpus replay in
//! `tests/fuzz_corpus.rs` calls the same function).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proviso::fuzzing::api_query(data));
