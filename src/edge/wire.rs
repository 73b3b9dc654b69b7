//! Reads one JSON object into loosely typed field values, keeping the first
//! schema error. Field values never reach an error message: serde's own
//! messages quote the offending value, so every value is read through
//! [`WireValue`] and type errors are worded here, by field name.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::{EdgeError, RejectReason};
use crate::contract::EventType;

/// Field names that would carry message content. Any of them rejects the line.
pub const CONTENT_FIELDS: &[&str] = &[
    "text",
    "body",
    "content",
    "caption",
    "media",
    "url",
    "message",
    "msg",
    "link",
    "links",
    "attachment",
    "attachments",
    "html",
    "preview",
    "transcript",
    "title",
    "subject_line",
    "payload",
];

/// Every field of contract v1, in a fixed order (index = slot in `WireEvent`).
pub(super) const FIELDS: &[&str] = &[
    "type",
    "ts",
    "phone",
    "country",
    "device",
    "platform",
    "to",
    "group",
    "kind",
    "link_domain",
    "contacts",
    "business",
    "direction",
    "target",
    "reason",
    "purpose",
    "granted",
    "partner_id",
    "friend",
    "state",
    "partner",
];

/// Slot of a contract field, or `None` for any other key. A `match` lets
/// the compiler dispatch on length first instead of comparing every name.
pub(super) fn slot_of(key: &str) -> Option<usize> {
    Some(match key {
        "type" => 0,
        "ts" => 1,
        "phone" => 2,
        "country" => 3,
        "device" => 4,
        "platform" => 5,
        "to" => 6,
        "group" => 7,
        "kind" => 8,
        "link_domain" => 9,
        "contacts" => 10,
        "business" => 11,
        "direction" => 12,
        "target" => 13,
        "reason" => 14,
        "purpose" => 15,
        "granted" => 16,
        "partner_id" => 17,
        "friend" => 18,
        "state" => 19,
        "partner" => 20,
        _ => return None,
    })
}

/// Fields each type may carry besides `type`, `ts`, `phone`, `country`.
fn allowed_fields(event_type: EventType) -> &'static [&'static str] {
    match event_type {
        EventType::Register => &["device", "platform"],
        EventType::Session => &["device"],
        EventType::Message => &["to", "group", "kind", "link_domain"],
        EventType::Contacts => &["contacts"],
        EventType::BusinessMessage => &["business", "direction"],
        EventType::Report => &["target", "reason"],
        EventType::Block => &["target"],
        EventType::Consent => &["purpose", "granted"],
        EventType::DeleteAccount => &[],
        EventType::PartnerAccount => &["partner_id", "state", "partner"],
        EventType::PartnerFriend => &["partner_id", "friend", "state", "partner"],
        EventType::PartnerFlag => &["partner_id", "reason", "partner"],
    }
}

/// A JSON value as the edge cares about it.
#[derive(Debug)]
pub enum WireValue<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    StrArray(Vec<Cow<'a, str>>),
    /// Null, floats, objects, or arrays holding non-strings.
    Other,
}

/// The fields of one line, by slot in `FIELDS`.
pub struct WireEvent<'a> {
    values: [Option<WireValue<'a>>; FIELDS.len()],
}

impl<'a> WireEvent<'a> {
    pub fn get(&self, field: &str) -> Option<&WireValue<'a>> {
        let slot = slot_of(field)?;
        self.values[slot].as_ref()
    }

    pub fn optional_str(&self, field: &'static str) -> Result<Option<&str>, EdgeError> {
        match self.get(field) {
            None => Ok(None),
            Some(WireValue::Str(text)) => Ok(Some(text)),
            Some(_) => Err(EdgeError::wrong_type(field, "a string")),
        }
    }

    pub fn required_str(&self, field: &'static str) -> Result<&str, EdgeError> {
        self.optional_str(field)?.ok_or_else(|| EdgeError::missing(field))
    }

    pub fn required_bool(&self, field: &'static str) -> Result<bool, EdgeError> {
        match self.get(field) {
            None => Err(EdgeError::missing(field)),
            Some(WireValue::Bool(value)) => Ok(*value),
            Some(_) => Err(EdgeError::wrong_type(field, "true or false")),
        }
    }

    pub fn required_str_array(&self, field: &'static str) -> Result<Vec<&str>, EdgeError> {
        match self.get(field) {
            None => Err(EdgeError::missing(field)),
            Some(WireValue::StrArray(items)) => Ok(items.iter().map(|item| item.as_ref()).collect()),
            Some(_) => Err(EdgeError::wrong_type(field, "an array of phone number strings")),
        }
    }

    /// Refuses fields that exist in the contract but not for this type.
    pub fn check_fields(&self, event_type: EventType) -> Result<(), EdgeError> {
        let allowed = allowed_fields(event_type);
        for (slot, value) in self.values.iter().enumerate() {
            let name = FIELDS[slot];
            if value.is_some() && slot >= 4 && !allowed.contains(&name) {
                return Err(EdgeError::new(
                    RejectReason::UnknownField,
                    Some(name),
                    format!("field `{name}` is not part of a `{event_type}` event"),
                ));
            }
        }
        Ok(())
    }
}

/// Parses one line. JSON syntax errors report the column only.
pub fn parse_line(line: &[u8]) -> Result<WireEvent<'_>, EdgeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(line);
    let parsed = deserializer.deserialize_map(EventVisitor).and_then(|outcome| {
        deserializer.end()?;
        Ok(outcome)
    });
    match parsed {
        Ok(outcome) => outcome,
        Err(error) => Err(EdgeError::new(
            RejectReason::InvalidJson,
            None,
            match error.classify() {
                serde_json::error::Category::Eof => "line is not a complete JSON object".to_string(),
                _ => format!("line is not a JSON object (error at column {})", error.column()),
            },
        )),
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Result<WireEvent<'de>, EdgeError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut event = WireEvent { values: Default::default() };
        let mut first_error: Option<EdgeError> = None;
        while let Some(key) = map.next_key::<WireValue<'de>>()? {
            // serde_json only yields string keys.
            let WireValue::Str(key) = key else { continue };
            let slot = slot_of(key.as_ref());
            let error = match slot {
                Some(slot) if event.values[slot].is_none() => {
                    event.values[slot] = Some(map.next_value::<WireValue<'de>>()?);
                    continue;
                }
                Some(slot) => {
                    map.next_value::<IgnoredAny>()?;
                    EdgeError::new(
                        RejectReason::InvalidValue,
                        Some(FIELDS[slot]),
                        format!("field `{}` appears twice", FIELDS[slot]),
                    )
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                    let lower = key.to_ascii_lowercase();
                    match CONTENT_FIELDS.iter().find(|name| **name == lower) {
                        Some(name) => EdgeError::content(name),
                        None => unknown_field(&key),
                    }
                }
            };
            // The first error wins, except that content outranks everything:
            // a line carrying content must say so.
            let replace = match &first_error {
                None => true,
                Some(kept) => error.reason == RejectReason::Content && kept.reason != RejectReason::Content,
            };
            if replace {
                first_error = Some(error);
            }
        }
        Ok(match first_error {
            Some(error) => Err(error),
            None => Ok(event),
        })
    }
}

fn unknown_field(key: &str) -> EdgeError {
    // The key itself is never quoted (it is what the caller sent, and could
    // be a name or a number); only the contract's own field names are.
    let short = key.len() <= 32 && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    let message = match short.then(|| suggest(key)).flatten() {
        Some(near) => format!("unknown field (did you mean `{near}`?)"),
        None => "unknown field; the fields of each type are listed in the event contract".to_string(),
    };
    EdgeError::new(RejectReason::UnknownField, None, message)
}

/// The contract field closest to a misspelt one, if any is close.
fn suggest(key: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .map(|name| (edit_distance(key, name), *name))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

impl<'de> de::Deserialize<'de> for WireValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = WireValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(WireValue::Str(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(WireValue::Str(Cow::Owned(value.to_string())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(WireValue::Str(Cow::Owned(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(WireValue::Int(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(value).map(WireValue::Int).unwrap_or(WireValue::Other))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(WireValue::Other)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(WireValue::Bool(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(WireValue::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(WireValue::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(8).min(1024));
        let mut all_strings = true;
        while let Some(item) = seq.next_element::<WireValue<'de>>()? {
            match item {
                WireValue::Str(text) if all_strings => items.push(text),
                _ => all_strings = false,
            }
        }
        Ok(if all_strings { WireValue::StrArray(items) } else { WireValue::Other })
    }
}
