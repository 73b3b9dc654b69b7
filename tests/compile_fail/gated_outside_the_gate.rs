//! Outside the gate a `Gated<T>` cannot be made: its fields are private and
//! every constructor is a release function that checks.
use proviso::contract::Purpose;
use proviso::gate::Gated;

fn main() {
    let _forged = Gated { value: vec![1u32, 2, 3], purpose: Purpose::Ads };
}
