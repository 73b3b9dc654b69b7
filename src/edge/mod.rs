//! Privacy edge: turns one raw NDJSON line into a validated, pseudonymised event.
//!
//! Owns: the strict schema of contract v1, content rejection, E.164 parsing
//! (libphonenumber data via the `phonenumber` crate) and keyed pseudonyms.
//! Never: writes to disk, logs a field value, or lets a raw number leave this
//! module. Error messages name the field and at most the last two digits.

pub mod agreement;
mod error;
mod ids;
mod key;
mod matcher;
mod packed_table;
mod phone;
mod wire;

pub use error::{EdgeError, RejectReason};
pub use ids::{
    has_email, has_phone_like_run, is_reason_token, mask_contact_details, normalize_bare_domain, MAX_ID_LEN,
    MAX_REASON_LEN,
};
pub use key::{random_token, write_private, KeyError, PseudonymKey, KEY_FILE};
pub use phone::{PhoneBook, RawNumber};

use crate::contract::{
    Direction, Event, EventBody, EventType, FriendState, LinkOrigin, LinkState, MessageKind, Platform, Pseudonym,
    Purpose, Recipient, Region,
};
use ids::{bare_domain, opaque_id, reason_token, service_id};
use wire::{WireEvent, WireValue};

/// Largest address book accepted in one `contacts` snapshot.
pub const MAX_CONTACTS: usize = 10_000;
/// How far ahead of arrival an event time may be (clocks drift): 5 minutes.
pub const DEFAULT_MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

/// Who sent a batch. Partner networks may send only partner events, and
/// every event they send is attributed to them whatever the line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source<'a> {
    /// The messaging service (admin or ingest token, `proviso ingest`).
    Service,
    /// A partner network, by its configured name.
    Partner(&'a str),
}

/// The privacy edge. Cheap to share between threads (`&Edge` is all a worker needs).
pub struct Edge {
    phones: PhoneBook,
    /// Partner named on the service's partner events that carry no `partner` field.
    default_partner: String,
    /// Event times more than this far ahead of arrival are refused; times
    /// ahead by less are logged as the arrival time.
    max_future_skew_ms: i64,
    /// Arrival time of a line (the process's clock; tests pin it).
    clock: crate::clock::Clock,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Edge { .. }")
    }
}

impl Edge {
    pub fn new(key: PseudonymKey, default_region: Region) -> Edge {
        Edge {
            phones: PhoneBook::new(key, default_region),
            default_partner: crate::contract::DEFAULT_PARTNER.into(),
            max_future_skew_ms: DEFAULT_MAX_FUTURE_SKEW_MS,
            clock: crate::clock::Clock::system(),
        }
    }

    /// Sets how far ahead of arrival an event time may be.
    pub fn with_max_future_skew_ms(mut self, skew_ms: i64) -> Edge {
        self.max_future_skew_ms = skew_ms.max(0);
        self
    }

    /// Sets the clock that stamps arrivals (the pipeline's; tests pin it).
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Edge {
        self.clock = clock;
        self
    }

    /// The arrival time of a batch starting now.
    pub fn arrival_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Sets the partner that the service's partner events belong to when they
    /// name none.
    pub fn with_default_partner(mut self, partner: &str) -> Edge {
        self.default_partner = partner.to_string();
        self
    }

    /// Validates and pseudonymises one event line (without its newline) sent
    /// by the messaging service.
    pub fn accept_line(&self, line: &[u8]) -> Result<Event, EdgeError> {
        self.accept_line_from(line, Source::Service)
    }

    /// Validates and pseudonymises one event line sent by `source`, arriving now.
    pub fn accept_line_from(&self, line: &[u8], source: Source<'_>) -> Result<Event, EdgeError> {
        self.accept_line_at(line, source, self.arrival_ms())
    }

    /// Validates and pseudonymises one event line sent by `source` that
    /// arrived at `arrival_ms`: its time may not be later than arrival plus
    /// the allowed skew, and is logged as at most the arrival time.
    pub fn accept_line_at(&self, line: &[u8], source: Source<'_>, arrival_ms: i64) -> Result<Event, EdgeError> {
        let wire = wire::parse_line(line)?;
        self.accept_wire(wire, source, arrival_ms)
    }

    /// The key of the subject handles one partner sees: `configured` when
    /// given, else derived from the pseudonym key and the partner's name, so
    /// no two partners share an identifier for anyone.
    pub fn partner_handle_key(&self, partner: &str, configured: Option<&PseudonymKey>) -> PseudonymKey {
        if let Some(key) = configured {
            return key.clone();
        }
        let mut material = self.phones.key().bytes().to_vec();
        material.extend_from_slice(partner.as_bytes());
        PseudonymKey::from_bytes(blake3::derive_key("proviso 2026 partner subject handle v1", &material))
    }

    /// Resolves a written number to its pseudonym and region, as the edge would.
    pub fn resolve_phone(&self, phone: &str, country: Option<&str>) -> Result<(Pseudonym, Region), EdgeError> {
        let region = match country {
            Some(code) => Some(parse_country(code, "country")?),
            None => None,
        };
        self.phones.resolve(RawNumber::written(phone), region, "phone")
    }

    fn accept_wire(&self, wire: WireEvent<'_>, source: Source<'_>, arrival_ms: i64) -> Result<Event, EdgeError> {
        let type_name = wire.required_str("type")?;
        let event_type = EventType::parse(type_name).ok_or_else(|| {
            // The sent name is never quoted back; the accepted ones are.
            EdgeError::new(
                RejectReason::UnknownType,
                Some("type"),
                format!("unknown event type, expected one of: {}", EventType::expected().trim_end()),
            )
        })?;
        wire.check_fields(event_type)?;
        let partner = self.partner_of(&wire, event_type, source)?;

        let ts_ms = self.not_after_arrival(parse_ts(wire.get("ts"))?, arrival_ms)?;
        let country = match wire.optional_str("country")? {
            Some(code) => Some(parse_country(code, "country")?),
            None => None,
        };
        let (subject, region) =
            self.phones.resolve(RawNumber::written(wire.required_str("phone")?), country, "phone")?;
        let phone_field = |name: &'static str| -> Result<Pseudonym, EdgeError> {
            Ok(self.phones.resolve(RawNumber::written(wire.required_str(name)?), country, name)?.0)
        };

        let body = match event_type {
            EventType::Register => EventBody::Register {
                device: service_id(&wire, "device")?,
                platform: vocab(&wire, "platform", Platform::parse, Platform::expected)?,
            },
            EventType::Session => EventBody::Session { device: service_id(&wire, "device")? },
            EventType::Message => {
                let to = match (wire.get("to"), wire.get("group")) {
                    (Some(_), None) => Recipient::Subject(phone_field("to")?),
                    (None, Some(_)) => Recipient::Group(service_id(&wire, "group")?),
                    (Some(_), Some(_)) => {
                        return Err(EdgeError::new(
                            RejectReason::InvalidValue,
                            Some("group"),
                            "a message has either `to` or `group`, not both".to_string(),
                        ))
                    }
                    (None, None) => {
                        return Err(EdgeError::new(
                            RejectReason::MissingField,
                            Some("to"),
                            "missing field `to` (or `group`)".to_string(),
                        ))
                    }
                };
                let link_domain = match wire.optional_str("link_domain")? {
                    Some(domain) => Some(bare_domain(domain)?),
                    None => None,
                };
                EventBody::Message {
                    to,
                    kind: vocab(&wire, "kind", MessageKind::parse, MessageKind::expected)?,
                    link_domain,
                }
            }
            EventType::Contacts => {
                let items = wire.required_str_array("contacts")?;
                if items.len() > MAX_CONTACTS {
                    return Err(EdgeError::new(
                        RejectReason::InvalidValue,
                        Some("contacts"),
                        format!("at most {MAX_CONTACTS} contacts per snapshot"),
                    ));
                }
                let numbers = items.into_iter().map(RawNumber::written).collect();
                EventBody::Contacts { contacts: self.phones.resolve_book(numbers, country, "contacts")? }
            }
            EventType::BusinessMessage => EventBody::BusinessMessage {
                business: service_id(&wire, "business")?,
                direction: vocab(&wire, "direction", Direction::parse, Direction::expected)?,
            },
            EventType::Report => {
                EventBody::Report { target: phone_field("target")?, reason: reason_token(&wire, "reason")? }
            }
            EventType::Block => EventBody::Block { target: phone_field("target")? },
            EventType::Consent => {
                let purpose = vocab(&wire, "purpose", Purpose::parse, Purpose::expected)?;
                let granted = wire.required_bool("granted")?;
                if purpose.is_essential() && !granted {
                    return Err(EdgeError::essential_refusal(purpose));
                }
                EventBody::Consent { purpose, granted }
            }
            EventType::DeleteAccount => EventBody::DeleteAccount,
            EventType::PartnerAccount => EventBody::PartnerAccount {
                partner,
                partner_id: opaque_id(&wire, "partner_id")?,
                state: match wire.get("state") {
                    Some(_) => vocab(&wire, "state", LinkState::parse, LinkState::expected)?,
                    None => LinkState::Linked,
                },
                origin: match source {
                    Source::Service => LinkOrigin::Service,
                    Source::Partner(_) => LinkOrigin::Partner,
                },
            },
            EventType::PartnerFriend => EventBody::PartnerFriend {
                partner,
                partner_id: opaque_id(&wire, "partner_id")?,
                friend: opaque_id(&wire, "friend")?,
                state: vocab(&wire, "state", FriendState::parse, FriendState::expected)?,
            },
            EventType::PartnerFlag => EventBody::PartnerFlag {
                partner,
                partner_id: opaque_id(&wire, "partner_id")?,
                reason: reason_token(&wire, "reason")?,
            },
        };
        Ok(Event { ts_ms, subject, region, body })
    }

    /// `ts_ms` checked against arrival: refused beyond the allowed skew,
    /// else capped at the arrival time, so nothing logged (first sight, a
    /// consent change) takes effect later than its acknowledgement.
    fn not_after_arrival(&self, ts_ms: i64, arrival_ms: i64) -> Result<i64, EdgeError> {
        if ts_ms > arrival_ms.saturating_add(self.max_future_skew_ms) {
            return Err(EdgeError::new(
                RejectReason::InvalidTimestamp,
                Some("ts"),
                format!(
                    "`ts` is more than {} seconds ahead of proviso's clock; send the time the event happened",
                    self.max_future_skew_ms / 1000
                ),
            ));
        }
        Ok(ts_ms.min(arrival_ms))
    }

    /// The partner a partner event belongs to; refuses non-partner events
    /// from a partner, and a partner naming another partner.
    fn partner_of(&self, wire: &WireEvent<'_>, event_type: EventType, source: Source<'_>) -> Result<String, EdgeError> {
        let is_partner_event =
            matches!(event_type, EventType::PartnerAccount | EventType::PartnerFriend | EventType::PartnerFlag);
        let named = wire.optional_str("partner")?;
        match source {
            Source::Partner(_) if !is_partner_event => Err(EdgeError::new(
                RejectReason::NotAllowed,
                Some("type"),
                "a partner may send only partner_account, partner_friend and partner_flag events".to_string(),
            )),
            Source::Partner(own) => match named {
                Some(name) if name != own => Err(EdgeError::new(
                    RejectReason::NotAllowed,
                    Some("partner"),
                    "`partner` must name the partner whose token sent the event".to_string(),
                )),
                _ => Ok(own.to_string()),
            },
            Source::Service => match named {
                Some(name) => partner_name(name),
                None => Ok(self.default_partner.clone()),
            },
        }
    }
}

/// Partner names: 1 to 32 characters from a-z 0-9 _ -.
pub fn is_partner_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn partner_name(name: &str) -> Result<String, EdgeError> {
    if is_partner_name(name) {
        Ok(name.to_string())
    } else {
        Err(EdgeError::new(
            RejectReason::InvalidValue,
            Some("partner"),
            "`partner` must be a partner name of 1-32 characters from a-z 0-9 _ -".to_string(),
        ))
    }
}

/// Earliest and latest accepted event times: 2000-01-01 and 2100-01-01 UTC.
const MIN_TS_MS: i64 = 946_684_800_000;
const MAX_TS_MS: i64 = 4_102_444_800_000;

fn parse_ts(value: Option<&WireValue<'_>>) -> Result<i64, EdgeError> {
    let invalid = |detail: &str| EdgeError::new(RejectReason::InvalidTimestamp, Some("ts"), detail.to_string());
    let ts_ms = match value {
        None => return Err(EdgeError::missing("ts")),
        Some(WireValue::Int(ms)) => *ms,
        Some(WireValue::Str(text)) => {
            let parsed =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
                    invalid("`ts` must be an RFC 3339 time such as 2026-01-05T13:04:11Z or epoch milliseconds")
                })?;
            (parsed.unix_timestamp_nanos() / 1_000_000) as i64
        }
        Some(_) => return Err(EdgeError::wrong_type("ts", "an RFC 3339 string or integer epoch milliseconds")),
    };
    if !(MIN_TS_MS..MAX_TS_MS).contains(&ts_ms) {
        return Err(invalid("`ts` must lie between 2000-01-01 and 2100-01-01 (epoch milliseconds, not seconds)"));
    }
    Ok(ts_ms)
}

fn parse_country(code: &str, field: &'static str) -> Result<Region, EdgeError> {
    let upper = code.to_ascii_uppercase();
    match (Region::parse(&upper), upper.parse::<phonenumber::country::Id>()) {
        (Some(region), Ok(_)) => Ok(region),
        _ => Err(EdgeError::new(
            RejectReason::InvalidValue,
            Some(field),
            format!("`{field}` must be an ISO 3166 alpha-2 region code such as IN or BR"),
        )),
    }
}

fn vocab<T>(
    wire: &WireEvent<'_>,
    field: &'static str,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> &'static str,
) -> Result<T, EdgeError> {
    let value = wire.required_str(field)?;
    parse(value).ok_or_else(|| {
        EdgeError::new(
            RejectReason::InvalidValue,
            Some(field),
            format!("`{field}` must be one of: {}", expected().trim_end()),
        )
    })
}

#[cfg(test)]
mod tests;
