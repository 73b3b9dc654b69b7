//! A raw number has no Display, Clone or Serialize: it cannot reach a log
//! line, an error message or a file by accident.
use proviso::edge::RawNumber;

fn log_it(number: &RawNumber<'_>) -> String {
    format!("{number}")
}

fn keep_it(number: RawNumber<'_>) -> (RawNumber<'_>, RawNumber<'_>) {
    (number.clone(), number)
}

fn write_it(number: &RawNumber<'_>) -> String {
    serde_json::to_string(number).unwrap_or_default()
}

fn main() {}
