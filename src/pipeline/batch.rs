//! A request body turned into accepted events and numbered rejections.

use serde::Serialize;

use crate::contract::{encode_control, encode_event, Control, ControlBody, Event, KeyedAnswer, KeyedRejection, Record};
use crate::edge::{Edge, EdgeError, RejectReason, Source};
use crate::log::frame_with;

/// Longest accepted line (a 10,000-contact snapshot is about 250 KB).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One refused line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rejection {
    /// 1-based line number in the body (for a JSON array: the element number).
    pub line: usize,
    /// Stable machine-readable reason, e.g. `content` or `invalid_phone`.
    #[serde(serialize_with = "reason_name")]
    #[schema(value_type = String)]
    pub reason: RejectReason,
    /// What is wrong, naming the field; never quotes a value.
    pub error: String,
}

fn reason_name<S: serde::Serializer>(reason: &RejectReason, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(reason.as_str())
}

/// Accepted records, already framed for the log, plus the rejections.
#[derive(Default)]
pub struct Prepared {
    pub records: Vec<Record>,
    pub framed: Vec<u8>,
    pub rejected: Vec<Rejection>,
    /// The body's line number of each record (0 for records made inside proviso).
    lines: Vec<usize>,
    /// Set by [`Prepared::keyed`]: the batch was sent with an idempotency key.
    pub(super) key: Option<BatchKey>,
    /// Cluster mode: a message of the cluster's log appended under this
    /// request digest, stored by JetStream at this time (ms). When the
    /// digest is a key already applied within the idempotency window at
    /// that time, the message is a resend stored a second time (in a later
    /// epoch, where JetStream's deduplication does not reach) and only its
    /// position is kept.
    pub(super) resent: Option<([u8; 16], i64)>,
}

/// The idempotency key of a batch and the answer it gets if applied.
pub(super) struct BatchKey {
    pub(super) digest: [u8; 16],
    pub(super) answer: KeyedAnswer,
}

/// The 16-byte digest an idempotency key is remembered by: BLAKE3 of the
/// caller's scope (e.g. its token name) and the key, so two callers using
/// the same key never collide and the key itself is never stored.
pub fn idempotency_digest(scope: &str, key: &str) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new_derive_key("proviso 2026 idempotency key v1");
    hasher.update(&(scope.len() as u64).to_le_bytes());
    hasher.update(scope.as_bytes());
    hasher.update(key.as_bytes());
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    digest
}

/// The digest of a request body kept with its idempotency key: a resend
/// carries the same body; a different body under a used key is a client
/// bug, answered 422.
pub fn request_digest(body: &[u8]) -> [u8; 16] {
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&blake3::hash(body).as_bytes()[..16]);
    digest
}

impl Prepared {
    fn accept(&mut self, event: Event, line: usize) {
        frame_with(&mut self.framed, |out| encode_event(&event, out));
        self.records.push(Record::Event(event));
        self.lines.push(line);
    }

    /// Refuses partner flags and friendships about an account id that is
    /// not linked to that partner: neither now (`is_linked`) nor by an
    /// attestation earlier in this batch. (Applying such an event has no
    /// effect either; this names the line to its sender.)
    pub fn refuse_unlinked_partner_events(&mut self, is_linked: impl Fn(&str, &str) -> bool) {
        use crate::contract::{EventBody, LinkOrigin, LinkState};
        use std::collections::HashMap;
        let mut batch_links: HashMap<(&str, &str), bool> = HashMap::new();
        let mut refused = Vec::new();
        for (index, record) in self.records.iter().enumerate() {
            let Record::Event(event) = record else { continue };
            let linked = |partner: &str, account: &str| {
                batch_links.get(&(partner, account)).copied().unwrap_or_else(|| is_linked(partner, account))
            };
            let unlinked_field = match &event.body {
                EventBody::PartnerAccount { partner, partner_id, state, origin } => {
                    match (state, origin) {
                        (LinkState::Linked, LinkOrigin::Service) => batch_links.insert((partner, partner_id), true),
                        (LinkState::Unlinked, _) => batch_links.insert((partner, partner_id), false),
                        (LinkState::Linked, LinkOrigin::Partner) => None,
                    };
                    None
                }
                EventBody::PartnerFlag { partner, partner_id, .. } => {
                    (!linked(partner, partner_id)).then_some("partner_id")
                }
                EventBody::PartnerFriend { partner, partner_id, friend, .. } => {
                    if !linked(partner, partner_id) {
                        Some("partner_id")
                    } else if !linked(partner, friend) {
                        Some("friend")
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some(field) = unlinked_field {
                refused.push((index, field));
            }
        }
        if refused.is_empty() {
            return;
        }
        for &(index, field) in refused.iter().rev() {
            self.records.remove(index);
            let line = self.lines.remove(index);
            self.reject(
                line,
                EdgeError::new(
                    RejectReason::NotLinked,
                    Some(field),
                    format!(
                        "`{field}` is not an account the messaging service has attested as linked to this partner; \
                         flags and friendships are accepted only about linked accounts"
                    ),
                ),
            );
        }
        self.rejected.sort_by_key(|rejection| rejection.line);
        self.framed.clear();
        for record in &self.records {
            match record {
                Record::Event(event) => frame_with(&mut self.framed, |out| encode_event(event, out)),
                Record::Control(control) => frame_with(&mut self.framed, |out| encode_control(control, out)),
            }
        }
    }

    /// Records accepted (events, plus any control records).
    pub fn accepted(&self) -> usize {
        self.records.len()
    }

    /// Marks the batch as sent with the idempotency key `digest` (see
    /// [`idempotency_digest`]) for the request body whose digest is
    /// `request` ([`request_digest`]), first seen at `at_ms`: appends one
    /// `BatchKeyed` control record holding the answer (accepted events and
    /// the rejections as they stand now), framed with the events so the
    /// same group commit makes both durable. Call once, after every
    /// rejection is known and before taking them.
    pub fn keyed(&mut self, digest: [u8; 16], request: Option<[u8; 16]>, at_ms: i64) {
        debug_assert!(self.key.is_none(), "a batch has one key");
        let answer = KeyedAnswer {
            request,
            accepted: self.records.len() as u64,
            rejected: self
                .rejected
                .iter()
                .map(|rejection| KeyedRejection {
                    line: rejection.line as u64,
                    reason: rejection.reason.as_str().to_string(),
                    error: rejection.error.clone(),
                })
                .collect(),
        };
        let control =
            Control { ts_ms: at_ms, body: ControlBody::BatchKeyed { key_digest: digest, answer: answer.clone() } };
        frame_with(&mut self.framed, |out| encode_control(&control, out));
        self.records.push(Record::Control(control));
        self.lines.push(0);
        self.key = Some(BatchKey { digest, answer });
    }

    /// A control record written by proviso itself.
    pub fn from_control(control: Control) -> Prepared {
        let mut prepared = Prepared::default();
        prepared.push_control(control);
        prepared
    }

    /// Cluster mode: a resent message ([`Prepared::resent`]) reduced to the
    /// `StreamPosition` record the follower put last, so the node's log
    /// still says it got that far and nothing of the message is applied.
    pub(super) fn only_its_position(self) -> Prepared {
        let mut kept = Prepared::default();
        if let Some(Record::Control(position @ Control { body: ControlBody::StreamPosition { .. }, .. })) =
            self.records.into_iter().last()
        {
            kept.push_control(position);
        }
        kept
    }

    /// The keys of the `BatchKeyed` records among the records, with their times.
    pub(super) fn keys_logged(&self) -> impl Iterator<Item = ([u8; 16], i64)> + '_ {
        self.records.iter().filter_map(|record| match record {
            Record::Control(Control { ts_ms, body: ControlBody::BatchKeyed { key_digest, .. } }) => {
                Some((*key_digest, *ts_ms))
            }
            _ => None,
        })
    }

    /// Adds a control record written by proviso itself.
    pub fn push_control(&mut self, control: Control) {
        frame_with(&mut self.framed, |out| encode_control(&control, out));
        self.records.push(Record::Control(control));
        self.lines.push(0);
    }

    /// Rebuilds the rejections of a stored answer, as the client was sent them.
    pub fn rejections_of(answer: &KeyedAnswer) -> Vec<Rejection> {
        answer
            .rejected
            .iter()
            .map(|stored| Rejection {
                line: usize::try_from(stored.line).unwrap_or(usize::MAX),
                // Stored from `RejectReason::as_str`; a name this build does
                // not know (a newer release's log) reads as invalid_value.
                reason: RejectReason::ALL
                    .iter()
                    .copied()
                    .find(|reason| reason.as_str() == stored.reason)
                    .unwrap_or(RejectReason::InvalidValue),
                error: stored.error.clone(),
            })
            .collect()
    }

    fn reject(&mut self, line: usize, error: EdgeError) {
        self.rejected.push(Rejection { line, reason: error.reason, error: format!("line {line}: {}", error.message) });
    }

    /// Rejections counted by reason, for telemetry and summaries.
    pub fn rejected_by_reason(&self) -> Vec<(RejectReason, u64)> {
        let mut counts: Vec<(RejectReason, u64)> = Vec::new();
        for rejection in &self.rejected {
            match counts.iter_mut().find(|(reason, _)| *reason == rejection.reason) {
                Some((_, count)) => *count += 1,
                None => counts.push((rejection.reason, 1)),
            }
        }
        counts.sort();
        counts
    }
}

/// Runs the edge over a body: a JSON array of events, or NDJSON. Blank lines
/// are skipped but still counted, so line numbers match the file.
pub fn prepare(edge: &Edge, body: &[u8], source: Source<'_>) -> Prepared {
    let mut prepared = Prepared::default();
    let arrival_ms = edge.arrival_ms();
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body) {
            Ok(items) => {
                for (index, item) in items.iter().enumerate() {
                    match edge.accept_line_at(item.get().as_bytes(), source, arrival_ms) {
                        Ok(event) => prepared.accept(event, index + 1),
                        Err(error) => prepared.reject(index + 1, error),
                    }
                }
            }
            Err(error) => prepared.reject(
                error.line(),
                EdgeError::new(
                    RejectReason::InvalidJson,
                    None,
                    "body starts with `[` but is not a JSON array of objects".into(),
                ),
            ),
        }
        return prepared;
    }
    prepare_lines(edge, body, 1, &mut prepared, source);
    prepared
}

/// NDJSON lines, numbered from `first_line`, all arriving now.
pub fn prepare_lines(edge: &Edge, body: &[u8], first_line: usize, prepared: &mut Prepared, source: Source<'_>) {
    let arrival_ms = edge.arrival_ms();
    for (index, raw_line) in body.split(|b| *b == b'\n').enumerate() {
        let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let number = first_line + index;
        if line.len() > MAX_LINE_BYTES {
            prepared.reject(
                number,
                EdgeError::new(RejectReason::TooLarge, None, format!("line is longer than {MAX_LINE_BYTES} bytes")),
            );
            continue;
        }
        match edge.accept_line_at(line, source, arrival_ms) {
            Ok(event) => prepared.accept(event, number),
            Err(error) => prepared.reject(number, error),
        }
    }
}

impl Prepared {
    /// A batch of events built inside proviso (e.g. a consent change from the
    /// API), which have already passed the edge's checks.
    pub fn from_events(events: Vec<Event>) -> Prepared {
        let mut prepared = Prepared::default();
        for event in events {
            prepared.accept(event, 0);
        }
        prepared
    }
}
