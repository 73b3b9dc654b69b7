//! Fuzz target `log_record`: see `proviso::fuzzing::log_record` (the corpus replay in
//! `tests/fuzz_corpus.rs` calls the same function).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proviso::fuzzing::log_record(data));
