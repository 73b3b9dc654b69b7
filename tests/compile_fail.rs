//! Privacy boundaries the compiler checks: every file in `compile_fail/`
//! must fail to compile, with the errors recorded beside it (`.stderr`).
//! Regenerate those after a deliberate change with
//! `TRYBUILD=overwrite cargo test --test compile_fail`.

/// A pseudonym cannot be made from a number outside the edge, a raw number
/// cannot be printed, copied or serialized, a `Gated<T>` cannot be made
/// outside the gate, and a handler cannot return an ungated partner body.
#[test]
fn privacy_boundaries_do_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
