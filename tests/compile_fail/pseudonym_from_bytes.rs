//! Outside the crate a pseudonym cannot be made from bytes (only the edge
//! mints one from a number; storage rebuilds them inside the crate).
fn main() {
    let _ = proviso::contract::Pseudonym::from_stored([0; 16]);
}
