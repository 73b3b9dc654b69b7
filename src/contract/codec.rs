//! Binary codec for [`Event`]: the bytes of one log record's payload.
//!
//! Layout: `version u8, type u8, ts i64 LE, subject [16], region [2]`, then
//! the body fields in declaration order. Strings are `u16 LE length + bytes`,
//! pseudonym lists are `u32 LE count + 16 bytes each`.
//!
//! Versions: 1 (first release), 2 (partner events carry the sending
//! partner's name first; version-1 partner events decode with
//! [`DEFAULT_PARTNER`]), 3 (`partner_account` ends with its origin byte:
//! service attestation or partner claim; older records were accepted under
//! the contract of their time, when every link took effect, and decode as
//! attested by the service). Control records start with [`CONTROL_VERSION`]:
//! `0xC1, kind u8, ts i64 LE`, then the body. Budget charges are kind 3
//! (advertiser first); kind 2 is the older charge naming no advertiser, still
//! decoded (as `advertiser: None`) so old logs replay. Kind 5 is a keyed
//! batch: `digest [16], accepted u64 LE, count u32 LE`, then per rejected
//! line `line u64 LE, reason, error` (u32-length strings).

use super::{
    Control, ControlBody, DecisionAction, Direction, DisclosedItem, DisclosedRecord, Event, EventBody, EventType,
    FriendState, KeyedAnswer, KeyedRejection, LinkOrigin, LinkState, LogPosition, MessageKind, Platform, Pseudonym,
    Purpose, Recipient, Record, Region, DEFAULT_PARTNER,
};

const VERSION: u8 = 3;
const VERSION_2: u8 = 2;
const VERSION_1: u8 = 1;
/// First byte of a control record (never a valid event version).
const CONTROL_VERSION: u8 = 0xC1;
/// Strings in control records (rules files) may exceed u16: u32 length.
const CONTROL_RULES: u8 = 0;
const CONTROL_DECISION: u8 = 1;
/// A budget charge naming no advertiser (logs written before kind 3).
const CONTROL_BUDGET: u8 = 2;
/// A budget charge by one advertiser.
const CONTROL_ADVERTISER_BUDGET: u8 = 3;
/// Security feed cursors kept as tombstones across a compaction.
const CONTROL_FEED_GAPS: u8 = 4;
/// An idempotency key's digest and the answer its batch got.
const CONTROL_BATCH_KEYED: u8 = 5;
/// A batch key with the digest of its request body (after the rejections).
const CONTROL_BATCH_KEYED_BODY: u8 = 6;
/// [`ControlBody::StreamPosition`]: epoch then sequence, `u64` each.
const CONTROL_STREAM_POSITION: u8 = 7;
/// [`ControlBody::SecretMinted`]: pseudonym, then the 32-byte nonce.
const CONTROL_SECRET_MINTED: u8 = 8;
/// [`ControlBody::Disclosed`].
const CONTROL_DISCLOSED: u8 = 9;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown record version {0}")]
    Version(u8),
    #[error("unknown code {code} for {what}")]
    UnknownCode { what: &'static str, code: u8 },
    #[error("string is not utf-8")]
    Utf8,
    #[error("{0} trailing bytes after record")]
    Trailing(usize),
}

/// Appends the encoding of `event` to `out`.
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.push(event.body.event_type().code());
    out.extend_from_slice(&event.ts_ms.to_le_bytes());
    out.extend_from_slice(event.subject.as_bytes());
    out.extend_from_slice(&event.region.0);
    match &event.body {
        EventBody::Register { device, platform } => {
            put_str(out, device);
            out.push(platform.code());
        }
        EventBody::Session { device } => put_str(out, device),
        EventBody::Message { to, kind, link_domain } => {
            match to {
                Recipient::Subject(pseudonym) => {
                    out.push(0);
                    out.extend_from_slice(pseudonym.as_bytes());
                }
                Recipient::Group(group) => {
                    out.push(1);
                    put_str(out, group);
                }
            }
            out.push(kind.code());
            match link_domain {
                Some(domain) => {
                    out.push(1);
                    put_str(out, domain);
                }
                None => out.push(0),
            }
        }
        EventBody::Contacts { contacts } => {
            out.extend_from_slice(&(contacts.len() as u32).to_le_bytes());
            for contact in contacts {
                out.extend_from_slice(contact.as_bytes());
            }
        }
        EventBody::BusinessMessage { business, direction } => {
            put_str(out, business);
            out.push(direction.code());
        }
        EventBody::Report { target, reason } => {
            out.extend_from_slice(target.as_bytes());
            put_str(out, reason);
        }
        EventBody::Block { target } => out.extend_from_slice(target.as_bytes()),
        EventBody::Consent { purpose, granted } => {
            out.push(purpose.code());
            out.push(u8::from(*granted));
        }
        EventBody::DeleteAccount => {}
        EventBody::PartnerAccount { partner, partner_id, state, origin } => {
            put_str(out, partner);
            put_str(out, partner_id);
            out.push(state.code());
            out.push(origin.code());
        }
        EventBody::PartnerFriend { partner, partner_id, friend, state } => {
            put_str(out, partner);
            put_str(out, partner_id);
            put_str(out, friend);
            out.push(state.code());
        }
        EventBody::PartnerFlag { partner, partner_id, reason } => {
            put_str(out, partner);
            put_str(out, partner_id);
            put_str(out, reason);
        }
    }
}

fn put_str(out: &mut Vec<u8>, value: &str) {
    // The edge caps every string field far below u16::MAX.
    debug_assert!(value.len() <= u16::MAX as usize);
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// Appends the encoding of a control record to `out`.
pub fn encode_control(control: &Control, out: &mut Vec<u8>) {
    out.push(CONTROL_VERSION);
    match &control.body {
        ControlBody::RulesLoaded { .. } => out.push(CONTROL_RULES),
        ControlBody::Decision { .. } => out.push(CONTROL_DECISION),
        ControlBody::BudgetSpent { advertiser: None, .. } => out.push(CONTROL_BUDGET),
        ControlBody::BudgetSpent { advertiser: Some(_), .. } => out.push(CONTROL_ADVERTISER_BUDGET),
        ControlBody::SecurityFeedGaps { .. } => out.push(CONTROL_FEED_GAPS),
        ControlBody::BatchKeyed { answer, .. } if answer.request.is_some() => out.push(CONTROL_BATCH_KEYED_BODY),
        ControlBody::BatchKeyed { .. } => out.push(CONTROL_BATCH_KEYED),
        ControlBody::StreamPosition { .. } => out.push(CONTROL_STREAM_POSITION),
        ControlBody::SecretMinted { .. } => out.push(CONTROL_SECRET_MINTED),
        ControlBody::Disclosed(_) => out.push(CONTROL_DISCLOSED),
    }
    out.extend_from_slice(&control.ts_ms.to_le_bytes());
    match &control.body {
        ControlBody::RulesLoaded { text, lists } => {
            put_long_str(out, text);
            out.extend_from_slice(&(lists.len() as u32).to_le_bytes());
            for (path, content) in lists {
                put_long_str(out, path);
                put_long_str(out, content);
            }
        }
        ControlBody::Decision { subject, action, note } => {
            out.extend_from_slice(subject.as_bytes());
            out.push(action.code());
            put_long_str(out, note);
        }
        ControlBody::BudgetSpent { advertiser, business, day, epsilon_micros } => {
            if let Some(advertiser) = advertiser {
                put_long_str(out, advertiser);
            }
            put_long_str(out, business);
            out.extend_from_slice(&day.to_le_bytes());
            out.extend_from_slice(&epsilon_micros.to_le_bytes());
        }
        ControlBody::SecurityFeedGaps { partners } => {
            out.extend_from_slice(&(partners.len() as u32).to_le_bytes());
            for (partner, cursors) in partners {
                put_long_str(out, partner);
                out.extend_from_slice(&(cursors.len() as u32).to_le_bytes());
                for cursor in cursors {
                    out.extend_from_slice(&cursor.to_le_bytes());
                }
            }
        }
        ControlBody::BatchKeyed { key_digest, answer } => {
            out.extend_from_slice(key_digest);
            out.extend_from_slice(&answer.accepted.to_le_bytes());
            out.extend_from_slice(&(answer.rejected.len() as u32).to_le_bytes());
            for rejection in &answer.rejected {
                out.extend_from_slice(&rejection.line.to_le_bytes());
                put_long_str(out, &rejection.reason);
                put_long_str(out, &rejection.error);
            }
            if let Some(request) = &answer.request {
                out.extend_from_slice(request);
            }
        }
        ControlBody::StreamPosition { position } => {
            out.extend_from_slice(&position.epoch.to_le_bytes());
            out.extend_from_slice(&position.sequence.to_le_bytes());
        }
        ControlBody::SecretMinted { subject, nonce } => {
            out.extend_from_slice(subject.as_bytes());
            out.extend_from_slice(nonce);
        }
        ControlBody::Disclosed(record) => {
            out.extend_from_slice(&record.id);
            put_long_str(out, &record.partner);
            out.push(record.purpose.code());
            put_long_str(out, &record.kind);
            out.extend_from_slice(&(record.people.len() as u32).to_le_bytes());
            for person in &record.people {
                out.extend_from_slice(person.as_bytes());
            }
            put_long_str(out, &record.about);
            out.extend_from_slice(&(record.items.len() as u32).to_le_bytes());
            for item in &record.items {
                put_long_str(out, &item.partner_id);
                for optional in [&item.suggested, &item.business] {
                    match optional {
                        Some(value) => {
                            out.push(1);
                            put_long_str(out, value);
                        }
                        None => out.push(0),
                    }
                }
                out.extend_from_slice(&(item.people.len() as u32).to_le_bytes());
                for index in &item.people {
                    out.extend_from_slice(&index.to_le_bytes());
                }
            }
            out.extend_from_slice(&(record.nonces.len() as u32).to_le_bytes());
            for (index, nonce) in &record.nonces {
                out.extend_from_slice(&index.to_le_bytes());
                out.extend_from_slice(nonce);
            }
            out.extend_from_slice(&record.decided_after.epoch.to_le_bytes());
            out.extend_from_slice(&record.decided_after.sequence.to_le_bytes());
        }
    }
}

fn put_long_str(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// Decodes any log record payload.
pub fn decode_record(bytes: &[u8]) -> Result<Record, CodecError> {
    if bytes.first() != Some(&CONTROL_VERSION) {
        return decode_event(bytes).map(Record::Event);
    }
    let mut reader = Reader { bytes, at: 1 };
    let kind = reader.u8()?;
    let ts_ms = i64::from_le_bytes(reader.array::<8>()?);
    let body = match kind {
        CONTROL_RULES => {
            let text = reader.long_string()?;
            let count = u32::from_le_bytes(reader.array::<4>()?) as usize;
            let mut lists = Vec::with_capacity(count.min(reader.remaining() / 8));
            for _ in 0..count {
                lists.push((reader.long_string()?, reader.long_string()?));
            }
            ControlBody::RulesLoaded { text, lists }
        }
        CONTROL_DECISION => ControlBody::Decision {
            subject: reader.pseudonym()?,
            action: reader.code(DecisionAction::from_code, "decision")?,
            note: reader.long_string()?,
        },
        CONTROL_BUDGET | CONTROL_ADVERTISER_BUDGET => ControlBody::BudgetSpent {
            advertiser: if kind == CONTROL_ADVERTISER_BUDGET { Some(reader.long_string()?) } else { None },
            business: reader.long_string()?,
            day: i32::from_le_bytes(reader.array::<4>()?),
            epsilon_micros: u64::from_le_bytes(reader.array::<8>()?),
        },
        CONTROL_FEED_GAPS => {
            let count = u32::from_le_bytes(reader.array::<4>()?) as usize;
            let mut partners = Vec::with_capacity(count.min(reader.remaining() / 8));
            for _ in 0..count {
                let partner = reader.long_string()?;
                let cursors_count = u32::from_le_bytes(reader.array::<4>()?) as usize;
                let mut cursors = Vec::with_capacity(cursors_count.min(reader.remaining() / 8));
                for _ in 0..cursors_count {
                    cursors.push(u64::from_le_bytes(reader.array::<8>()?));
                }
                partners.push((partner, cursors));
            }
            ControlBody::SecurityFeedGaps { partners }
        }
        code @ (CONTROL_BATCH_KEYED | CONTROL_BATCH_KEYED_BODY) => {
            let key_digest = reader.array::<16>()?;
            let accepted = u64::from_le_bytes(reader.array::<8>()?);
            let count = u32::from_le_bytes(reader.array::<4>()?) as usize;
            let mut rejected = Vec::with_capacity(count.min(reader.remaining() / 16));
            for _ in 0..count {
                rejected.push(KeyedRejection {
                    line: u64::from_le_bytes(reader.array::<8>()?),
                    reason: reader.long_string()?,
                    error: reader.long_string()?,
                });
            }
            let request = if code == CONTROL_BATCH_KEYED_BODY { Some(reader.array::<16>()?) } else { None };
            ControlBody::BatchKeyed { key_digest, answer: KeyedAnswer { accepted, rejected, request } }
        }
        CONTROL_STREAM_POSITION => ControlBody::StreamPosition {
            position: LogPosition {
                epoch: u64::from_le_bytes(reader.array::<8>()?),
                sequence: u64::from_le_bytes(reader.array::<8>()?),
            },
        },
        CONTROL_SECRET_MINTED => {
            ControlBody::SecretMinted { subject: reader.pseudonym()?, nonce: reader.array::<32>()? }
        }
        CONTROL_DISCLOSED => {
            let id = reader.array::<16>()?;
            let partner = reader.long_string()?;
            let purpose = reader.code(Purpose::from_code, "purpose")?;
            let kind = reader.long_string()?;
            let count = u32::from_le_bytes(reader.array::<4>()?) as usize;
            let mut people = Vec::with_capacity(count.min(reader.remaining() / 16));
            for _ in 0..count {
                people.push(reader.pseudonym()?);
            }
            let about = reader.long_string()?;
            let count = u32::from_le_bytes(reader.array::<4>()?) as usize;
            let mut items = Vec::with_capacity(count.min(reader.remaining() / 8));
            for _ in 0..count {
                let partner_id = reader.long_string()?;
                let mut optional = || -> Result<Option<String>, CodecError> {
                    match reader.u8()? {
                        0 => Ok(None),
                        1 => Ok(Some(reader.long_string()?)),
                        code => Err(CodecError::UnknownCode { what: "optional string", code }),
                    }
                };
                let suggested = optional()?;
                let business = optional()?;
                let count = u32::from_le_bytes(reader.array::<4>()?) as usize;
                let mut involved = Vec::with_capacity(count.min(reader.remaining() / 4));
                for _ in 0..count {
                    involved.push(u32::from_le_bytes(reader.array::<4>()?));
                }
                items.push(DisclosedItem { partner_id, suggested, business, people: involved });
            }
            let count = u32::from_le_bytes(reader.array::<4>()?) as usize;
            let mut nonces = Vec::with_capacity(count.min(reader.remaining() / 36));
            for _ in 0..count {
                nonces.push((u32::from_le_bytes(reader.array::<4>()?), reader.array::<32>()?));
            }
            let decided_after = LogPosition {
                epoch: u64::from_le_bytes(reader.array::<8>()?),
                sequence: u64::from_le_bytes(reader.array::<8>()?),
            };
            ControlBody::Disclosed(Box::new(DisclosedRecord {
                decided_after,
                id,
                partner,
                purpose,
                kind,
                people,
                about,
                items,
                nonces,
            }))
        }
        code => return Err(CodecError::UnknownCode { what: "control record", code }),
    };
    if reader.remaining() != 0 {
        return Err(CodecError::Trailing(reader.remaining()));
    }
    Ok(Record::Control(Control { ts_ms, body }))
}

/// Decodes one payload written by [`encode_event`] (version 1, 2 or 3).
pub fn decode_event(bytes: &[u8]) -> Result<Event, CodecError> {
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.u8()?;
    if !matches!(version, VERSION | VERSION_2 | VERSION_1) {
        return Err(CodecError::Version(version));
    }

    let type_code = reader.u8()?;
    let event_type =
        EventType::from_code(type_code).ok_or(CodecError::UnknownCode { what: "event type", code: type_code })?;
    let ts_ms = i64::from_le_bytes(reader.array::<8>()?);
    let subject = Pseudonym::from_stored(reader.array::<16>()?);
    let region = Region(reader.array::<2>()?);
    let body = match event_type {
        EventType::Register => {
            EventBody::Register { device: reader.string()?, platform: reader.code(Platform::from_code, "platform")? }
        }
        EventType::Session => EventBody::Session { device: reader.string()? },
        EventType::Message => {
            let to = match reader.u8()? {
                0 => Recipient::Subject(reader.pseudonym()?),
                1 => Recipient::Group(reader.string()?),
                code => return Err(CodecError::UnknownCode { what: "recipient", code }),
            };
            let kind = reader.code(MessageKind::from_code, "message kind")?;
            let link_domain = match reader.u8()? {
                0 => None,
                _ => Some(reader.string()?),
            };
            EventBody::Message { to, kind, link_domain }
        }
        EventType::Contacts => {
            let count = u32::from_le_bytes(reader.array::<4>()?) as usize;
            let mut contacts = Vec::with_capacity(count.min(reader.remaining() / 16));
            for _ in 0..count {
                contacts.push(reader.pseudonym()?);
            }
            EventBody::Contacts { contacts }
        }
        EventType::BusinessMessage => EventBody::BusinessMessage {
            business: reader.string()?,
            direction: reader.code(Direction::from_code, "direction")?,
        },
        EventType::Report => EventBody::Report { target: reader.pseudonym()?, reason: reader.string()? },
        EventType::Block => EventBody::Block { target: reader.pseudonym()? },
        EventType::Consent => {
            EventBody::Consent { purpose: reader.code(Purpose::from_code, "purpose")?, granted: reader.u8()? != 0 }
        }
        EventType::DeleteAccount => EventBody::DeleteAccount,
        EventType::PartnerAccount => EventBody::PartnerAccount {
            partner: reader.partner(version)?,
            partner_id: reader.string()?,
            state: reader.code(LinkState::from_code, "link state")?,
            origin: if version == VERSION {
                reader.code(LinkOrigin::from_code, "link origin")?
            } else {
                LinkOrigin::Service
            },
        },
        EventType::PartnerFriend => EventBody::PartnerFriend {
            partner: reader.partner(version)?,
            partner_id: reader.string()?,
            friend: reader.string()?,
            state: reader.code(FriendState::from_code, "friend state")?,
        },
        EventType::PartnerFlag => EventBody::PartnerFlag {
            partner: reader.partner(version)?,
            partner_id: reader.string()?,
            reason: reader.string()?,
        },
    };
    if reader.remaining() != 0 {
        return Err(CodecError::Trailing(reader.remaining()));
    }
    Ok(Event { ts_ms, subject, region, body })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, len: usize) -> Result<&[u8], CodecError> {
        if self.remaining() < len {
            return Err(CodecError::Truncated);
        }
        let slice = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn pseudonym(&mut self) -> Result<Pseudonym, CodecError> {
        Ok(Pseudonym::from_stored(self.array::<16>()?))
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let len = u16::from_le_bytes(self.array::<2>()?) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::Utf8)
    }

    fn long_string(&mut self) -> Result<String, CodecError> {
        let len = u32::from_le_bytes(self.array::<4>()?) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::Utf8)
    }

    /// The sending partner's name: absent before version 2.
    fn partner(&mut self, version: u8) -> Result<String, CodecError> {
        if version == VERSION_1 {
            Ok(DEFAULT_PARTNER.to_string())
        } else {
            self.string()
        }
    }

    fn code<T>(&mut self, from_code: fn(u8) -> Option<T>, what: &'static str) -> Result<T, CodecError> {
        let code = self.u8()?;
        from_code(code).ok_or(CodecError::UnknownCode { what, code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pseudonym(seed: u8) -> Pseudonym {
        Pseudonym::from_stored([seed; 16])
    }

    fn arb_token() -> impl Strategy<Value = String> {
        "[a-z0-9_.-]{0,20}"
    }

    fn arb_body() -> impl Strategy<Value = EventBody> {
        prop_oneof![
            (arb_token(), 0u8..4).prop_map(|(device, p)| EventBody::Register {
                device,
                platform: Platform::from_code(p).expect("in range"),
            }),
            arb_token().prop_map(|device| EventBody::Session { device }),
            (any::<u8>(), 0u8..5, proptest::option::of(arb_token())).prop_map(|(s, k, link_domain)| {
                EventBody::Message {
                    to: Recipient::Subject(pseudonym(s)),
                    kind: MessageKind::from_code(k).expect("in range"),
                    link_domain,
                }
            }),
            arb_token().prop_map(|group| EventBody::Message {
                to: Recipient::Group(group),
                kind: MessageKind::Text,
                link_domain: None,
            }),
            proptest::collection::vec(any::<u8>(), 0..50)
                .prop_map(|seeds| EventBody::Contacts { contacts: seeds.into_iter().map(pseudonym).collect() }),
            (arb_token(), any::<bool>()).prop_map(|(business, out)| EventBody::BusinessMessage {
                business,
                direction: if out { Direction::Out } else { Direction::In },
            }),
            (any::<u8>(), arb_token()).prop_map(|(s, reason)| EventBody::Report { target: pseudonym(s), reason }),
            any::<u8>().prop_map(|s| EventBody::Block { target: pseudonym(s) }),
            (0u8..5, any::<bool>()).prop_map(|(p, granted)| EventBody::Consent {
                purpose: Purpose::from_code(p).expect("in range"),
                granted,
            }),
            Just(EventBody::DeleteAccount),
            (arb_token(), any::<bool>(), any::<bool>()).prop_map(|(partner_id, linked, claim)| {
                EventBody::PartnerAccount {
                    partner: "friendnet".into(),
                    partner_id,
                    state: if linked { LinkState::Linked } else { LinkState::Unlinked },
                    origin: if claim { LinkOrigin::Partner } else { LinkOrigin::Service },
                }
            }),
            (arb_token(), arb_token(), any::<bool>()).prop_map(|(partner_id, friend, added)| {
                EventBody::PartnerFriend {
                    partner: "friendnet".into(),
                    partner_id,
                    friend,
                    state: if added { FriendState::Added } else { FriendState::Removed },
                }
            }),
            (arb_token(), arb_token()).prop_map(|(partner_id, reason)| EventBody::PartnerFlag {
                partner: "other".into(),
                partner_id,
                reason,
            }),
        ]
    }

    proptest! {
        /// Every event survives encode then decode unchanged, and any strict
        /// prefix of its encoding is refused rather than misread.
        #[test]
        fn encode_then_decode_is_identity(ts_ms in any::<i64>(), s in any::<u8>(), body in arb_body()) {
            let event = Event { ts_ms, subject: pseudonym(s), region: Region(*b"IN"), body };
            let mut bytes = Vec::new();
            encode_event(&event, &mut bytes);
            prop_assert_eq!(decode_record(&bytes), Ok(Record::Event(event.clone())));
            prop_assert_eq!(decode_event(&bytes), Ok(event));
            for cut in 0..bytes.len() {
                prop_assert!(decode_event(&bytes[..cut]).is_err());
            }
        }

        /// Control records survive encode then decode, and prefixes are refused.
        #[test]
        fn control_records_round_trip(ts_ms in any::<i64>(), text in ".{0,200}", note in ".{0,40}", s in any::<u8>()) {
            for body in [
                ControlBody::RulesLoaded { text: text.clone(), lists: vec![("lists/a.txt".into(), note.clone())] },
                ControlBody::Decision { subject: pseudonym(s), action: DecisionAction::Clear, note: note.clone() },
                ControlBody::BudgetSpent { advertiser: None, business: note.clone(), day: i32::from(s) - 100, epsilon_micros: ts_ms as u64 },
                ControlBody::BudgetSpent {
                    advertiser: Some(text.chars().take(20).collect()),
                    business: note.clone(),
                    day: i32::from(s) - 100,
                    epsilon_micros: ts_ms as u64,
                },
                ControlBody::SecurityFeedGaps {
                    partners: vec![(note.clone(), vec![0, u64::from(s), ts_ms as u64]), ("b".into(), vec![])],
                },
                ControlBody::BatchKeyed { key_digest: [s; 16], answer: KeyedAnswer::default() },
                ControlBody::BatchKeyed {
                    key_digest: [s.wrapping_add(1); 16],
                    answer: KeyedAnswer {
                        accepted: ts_ms as u64,
                        rejected: vec![
                            KeyedRejection { line: u64::from(s), reason: "content".into(), error: note.clone() },
                            KeyedRejection { line: 7, reason: text.chars().take(10).collect(), error: String::new() },
                        ],
                        request: Some([s; 16]),
                    },
                },
                ControlBody::StreamPosition { position: LogPosition { epoch: u64::from(s), sequence: ts_ms as u64 } },
                ControlBody::SecretMinted { subject: pseudonym(s), nonce: [s; 32] },
                ControlBody::Disclosed(Box::new(DisclosedRecord {
                    id: [s; 16],
                    partner: note.clone(),
                    purpose: Purpose::Ads,
                    kind: text.chars().take(12).collect(),
                    people: vec![pseudonym(s), pseudonym(s.wrapping_add(1))],
                    about: "suggestion".into(),
                    items: vec![
                        DisclosedItem { partner_id: note.clone(), suggested: Some("x".into()), business: None, people: vec![0, 1] },
                        DisclosedItem { partner_id: String::new(), suggested: None, business: Some(note.clone()), people: vec![] },
                    ],
                    nonces: vec![(1, [s; 32])],
                    decided_after: LogPosition { epoch: u64::from(s), sequence: 7 },
                })),
            ] {
                let control = Control { ts_ms, body };
                let mut bytes = Vec::new();
                encode_control(&control, &mut bytes);
                prop_assert_eq!(decode_record(&bytes), Ok(Record::Control(control)));
                for cut in 0..bytes.len() {
                    prop_assert!(decode_record(&bytes[..cut]).is_err());
                }
            }
        }
    }

    /// A budget charge written before budgets were per advertiser (kind 2,
    /// bytes as that release wrote them) still decodes, naming no advertiser.
    #[test]
    fn budget_charges_naming_no_advertiser_decode() {
        let mut bytes = vec![CONTROL_VERSION, 2];
        bytes.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
        bytes.extend_from_slice(&4u32.to_le_bytes());
        bytes.extend_from_slice(b"shop");
        bytes.extend_from_slice(&19_675i32.to_le_bytes());
        bytes.extend_from_slice(&500_000u64.to_le_bytes());
        let body = ControlBody::BudgetSpent {
            advertiser: None,
            business: "shop".into(),
            day: 19_675,
            epsilon_micros: 500_000,
        };
        assert_eq!(
            decode_record(&bytes),
            Ok(Record::Control(Control { ts_ms: 1_700_000_000_000, body: body.clone() }))
        );
        let mut encoded = Vec::new();
        encode_control(&Control { ts_ms: 1_700_000_000_000, body }, &mut encoded);
        assert_eq!(encoded, bytes, "a charge naming no advertiser is still written as kind 2");
    }

    /// Version-1 partner events (no partner name) still decode, named
    /// [`DEFAULT_PARTNER`]: logs from the first release replay.
    #[test]
    fn version_1_partner_events_decode() {
        let mut bytes = vec![1u8, EventType::PartnerFlag.code()];
        bytes.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
        bytes.extend_from_slice(&[7u8; 16]);
        bytes.extend_from_slice(b"IN");
        for text in ["p_1", "spam"] {
            bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
            bytes.extend_from_slice(text.as_bytes());
        }
        let event = decode_event(&bytes).expect("version 1 decodes");
        assert_eq!(
            event.body,
            EventBody::PartnerFlag { partner: DEFAULT_PARTNER.into(), partner_id: "p_1".into(), reason: "spam".into() }
        );
    }

    /// Version-2 `partner_account` records (no origin byte) decode as
    /// attested by the service: they were accepted when every link counted.
    #[test]
    fn version_2_partner_accounts_decode_as_attested() {
        let mut bytes = vec![2u8, EventType::PartnerAccount.code()];
        bytes.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
        bytes.extend_from_slice(&[7u8; 16]);
        bytes.extend_from_slice(b"IN");
        for text in ["friendnet", "p_1"] {
            bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
            bytes.extend_from_slice(text.as_bytes());
        }
        bytes.push(LinkState::Linked.code());
        let event = decode_event(&bytes).expect("version 2 decodes");
        assert_eq!(
            event.body,
            EventBody::PartnerAccount {
                partner: "friendnet".into(),
                partner_id: "p_1".into(),
                state: LinkState::Linked,
                origin: LinkOrigin::Service,
            }
        );
    }
}
