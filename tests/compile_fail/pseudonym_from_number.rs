//! Outside the edge a written number cannot be turned into a pseudonym:
//! the phone book takes only a `RawNumber`, and only the edge makes one.
use proviso::contract::Region;
use proviso::edge::{PhoneBook, PseudonymKey, RawNumber};

fn main() {
    let book = PhoneBook::new(PseudonymKey::from_bytes([1; 32]), Region::UNKNOWN);
    let _ = book.resolve("+14155550100", None, "phone");
    let _ = book.resolve(RawNumber::written("+14155550100"), None, "phone");
}
