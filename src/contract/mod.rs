//! Event contract v1: the shape of an event after the privacy edge.
//!
//! Owns: the typed, pseudonymised event (`Event`), its closed vocabularies
//! (platforms, message kinds, purposes...) and the binary codec the log stores.
//! Never: does I/O, parses raw NDJSON (that is `edge/`), or holds a phone number:
//! every phone-valued field is already a [`Pseudonym`] here.

mod codec;

pub use codec::{decode_event, decode_record, encode_control, encode_event, CodecError};

use std::fmt;

/// A keyed, one-way pseudonym of an E.164 number (first 16 bytes of a BLAKE3
/// keyed hash). 128 bits keeps collisions out of reach for any realistic
/// population while halving the state cost of a full 32-byte hash.
///
/// Only the edge mints pseudonyms from numbers (`edge::PhoneBook`, from a
/// keyed hash of an E.164 number); everything else gets them back from
/// storage (`Pseudonym::from_stored`, crate-only) or from a subject id
/// ([`Pseudonym::from_subject_id`]). No constructor takes a number, and the
/// bytes are private: outside the crate a pseudonym cannot be made at all,
/// except by parsing an `s_` id it was already given.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym([u8; 16]);

impl Pseudonym {
    pub const LEN: usize = 16;

    /// What compaction writes in place of an erased person's pseudonym in
    /// the records it keeps (all zero bytes: no number hashes to it).
    pub const ERASED: Pseudonym = Pseudonym([0; 16]);

    /// The pseudonym the edge minted from a keyed hash of an E.164 number:
    /// its first 16 bytes. Only `edge/` calls this; the number itself never
    /// reaches this module.
    pub(crate) fn from_keyed_hash(hash: &blake3::Hash) -> Self {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash.as_bytes()[..16]);
        Pseudonym(bytes)
    }

    /// The person's partition of a cluster of `partitions`: the first eight
    /// bytes as a number, modulo the count. The pseudonym is a keyed hash,
    /// so people spread evenly and no one can aim at a partition without
    /// the key.
    pub fn partition(&self, partitions: u16) -> u16 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        (u64::from_le_bytes(first) % u64::from(partitions.max(1))) as u16
    }

    /// Rebuilds a pseudonym from bytes the edge produced earlier and storage
    /// kept (log records, snapshots, the vault).
    pub(crate) fn from_stored(bytes: [u8; 16]) -> Self {
        Pseudonym(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The opaque subject id shown by the API: `s_` and 32 lowercase hex digits.
    pub fn subject_id(&self) -> String {
        prefixed_hex("s_", &self.0)
    }

    /// Parses a subject id made by [`Pseudonym::subject_id`].
    pub fn from_subject_id(id: &str) -> Option<Self> {
        let hex = id.strip_prefix("s_")?.as_bytes();
        if hex.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (index, pair) in hex.chunks_exact(2).enumerate() {
            bytes[index] = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(Pseudonym(bytes))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `prefix` followed by `bytes` as lowercase hex: every id, handle, key
/// file and token proviso writes.
pub fn prefixed_hex(prefix: &str, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(prefix.len() + 2 * bytes.len());
    out.push_str(prefix);
    for byte in bytes {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0xf) as usize] as char);
    }
    out
}

/// The first `N` bytes of the BLAKE3 hash of `text`: the short keys and
/// digests the feeds' ledger and the audit index hold instead of ids, and
/// the vault's list of handles an audit scrub owes.
pub fn hash_prefix<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&blake3::hash(text.as_bytes()).as_bytes()[..N]);
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.subject_id())
    }
}

/// ISO 3166 alpha-2 region of a subject's number, as two ASCII bytes
/// (`ZZ` when libphonenumber cannot name one, e.g. non-geographic codes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(pub [u8; 2]);

impl Region {
    pub const UNKNOWN: Region = Region(*b"ZZ");

    pub fn parse(code: &str) -> Option<Region> {
        let bytes = code.as_bytes();
        if bytes.len() == 2 && bytes.iter().all(u8::is_ascii_uppercase) {
            Some(Region([bytes[0], bytes[1]]))
        } else {
            None
        }
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from two ASCII uppercase letters.
        std::str::from_utf8(&self.0).unwrap_or("ZZ")
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares a closed vocabulary: a `u8`-coded enum with its wire names.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        pub enum $name { $($variant = $code),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(value: &str) -> Option<$name> {
                match value { $($wire => Some($name::$variant),)+ _ => None }
            }

            pub fn code(self) -> u8 {
                self as u8
            }

            pub fn from_code(code: u8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// The accepted wire names, for error messages.
            pub fn expected() -> &'static str {
                concat!($($wire, " "),+)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// The `type` of an event line.
    EventType {
        Register = 0 => "register",
        Session = 1 => "session",
        Message = 2 => "message",
        Contacts = 3 => "contacts",
        BusinessMessage = 4 => "business_message",
        Report = 5 => "report",
        Block = 6 => "block",
        Consent = 7 => "consent",
        DeleteAccount = 8 => "delete_account",
        PartnerAccount = 9 => "partner_account",
        PartnerFriend = 10 => "partner_friend",
        PartnerFlag = 11 => "partner_flag",
    }
);

vocabulary!(
    /// Client platform named on `register`.
    Platform {
        Android = 0 => "android",
        Ios = 1 => "ios",
        Web = 2 => "web",
        Other = 3 => "other",
    }
);

vocabulary!(
    /// What a message carried (never the carried thing itself).
    MessageKind {
        Text = 0 => "text",
        Media = 1 => "media",
        Voice = 2 => "voice",
        Call = 3 => "call",
        Other = 4 => "other",
    }
);

vocabulary!(
    /// Direction of a business message: `out` is the user writing to the business.
    Direction {
        In = 0 => "in",
        Out = 1 => "out",
    }
);

vocabulary!(
    /// Why data may be used. The first three are essential and cannot be refused.
    Purpose {
        Service = 0 => "service",
        Security = 1 => "security",
        Analytics = 2 => "analytics",
        Product = 3 => "product",
        Ads = 4 => "ads",
    }
);

impl Purpose {
    /// Essential purposes keep the service running and safe; a person cannot
    /// refuse them (they can delete their account instead).
    pub fn is_essential(self) -> bool {
        matches!(self, Purpose::Service | Purpose::Security | Purpose::Analytics)
    }
}

vocabulary!(
    /// State of a partner friendship edge.
    FriendState {
        Added = 0 => "added",
        Removed = 1 => "removed",
    }
);

vocabulary!(
    /// State of a partner account link; `unlinked` stops all flow for the pair.
    LinkState {
        Linked = 0 => "linked",
        Unlinked = 1 => "unlinked",
    }
);

vocabulary!(
    /// Who said a `partner_account` event. Only the messaging service can
    /// attest that a person linked the two accounts in the app; a partner's
    /// own `linked` is a claim that shares nothing until the service attests
    /// the same (partner, account id, person).
    LinkOrigin {
        Service = 0 => "service",
        Partner = 1 => "partner",
    }
);

/// Who a message went to: another subject or an opaque group.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Recipient {
    Subject(Pseudonym),
    Group(String),
}

/// The type-specific part of an event. Strings here are opaque ids or short
/// tokens that the edge has checked against a strict character set.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum EventBody {
    Register {
        device: String,
        platform: Platform,
    },
    Session {
        device: String,
    },
    Message {
        to: Recipient,
        kind: MessageKind,
        link_domain: Option<String>,
    },
    Contacts {
        contacts: Vec<Pseudonym>,
    },
    BusinessMessage {
        business: String,
        direction: Direction,
    },
    Report {
        target: Pseudonym,
        reason: String,
    },
    Block {
        target: Pseudonym,
    },
    Consent {
        purpose: Purpose,
        granted: bool,
    },
    DeleteAccount,
    /// `partner` is the name of the partner network that sent the event
    /// (from its token, or the `partner` field on the service's own feed).
    PartnerAccount {
        partner: String,
        partner_id: String,
        state: LinkState,
        /// The service (an attestation) or the partner (a claim).
        origin: LinkOrigin,
    },
    PartnerFriend {
        partner: String,
        partner_id: String,
        friend: String,
        state: FriendState,
    },
    PartnerFlag {
        partner: String,
        partner_id: String,
        reason: String,
    },
}

impl EventBody {
    pub fn event_type(&self) -> EventType {
        match self {
            EventBody::Register { .. } => EventType::Register,
            EventBody::Session { .. } => EventType::Session,
            EventBody::Message { .. } => EventType::Message,
            EventBody::Contacts { .. } => EventType::Contacts,
            EventBody::BusinessMessage { .. } => EventType::BusinessMessage,
            EventBody::Report { .. } => EventType::Report,
            EventBody::Block { .. } => EventType::Block,
            EventBody::Consent { .. } => EventType::Consent,
            EventBody::DeleteAccount => EventType::DeleteAccount,
            EventBody::PartnerAccount { .. } => EventType::PartnerAccount,
            EventBody::PartnerFriend { .. } => EventType::PartnerFriend,
            EventBody::PartnerFlag { .. } => EventType::PartnerFlag,
        }
    }
}

/// One accepted event, as the log stores it and processors read it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Event {
    /// Event time, UTC epoch milliseconds.
    pub ts_ms: i64,
    /// The acting account.
    pub subject: Pseudonym,
    /// Region of the acting account's number.
    pub region: Region,
    pub body: EventBody,
}

impl Event {
    /// Whether the event is the acting person's own use of the messaging
    /// service, as the service reports it: only such events make a person
    /// known (first sight, region, notice periods, activity). A partner's
    /// claim, flag or friendship says something about an account, never that
    /// its owner used the service.
    pub fn is_own_use(&self) -> bool {
        match &self.body {
            EventBody::PartnerAccount { origin, .. } => *origin == LinkOrigin::Service,
            EventBody::PartnerFriend { .. } | EventBody::PartnerFlag { .. } => false,
            _ => true,
        }
    }
}

/// Partner name given to partner events that name none (and to every
/// partner event logged by record version 1).
pub const DEFAULT_PARTNER: &str = "default";

/// A log record: an accepted event, or a control record written by proviso
/// itself (rules reloads, reviewer decisions) so that replay reproduces
/// every derived decision at the same position in the log.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Record {
    Event(Event),
    Control(Control),
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Control {
    /// Wall-clock time it was written, UTC epoch milliseconds.
    pub ts_ms: i64,
    pub body: ControlBody,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ControlBody {
    /// The abuse rules in force from this record on: the rules file text and
    /// the contents of every list file it names, so replay needs no files.
    RulesLoaded { text: String, lists: Vec<(String, String)> },
    /// A reviewer's decision about a subject.
    Decision { subject: Pseudonym, action: DecisionAction, note: String },
    /// Privacy budget spent on a noisy audience size: `epsilon_micros`
    /// millionths of epsilon by `advertiser` (the configured name of the
    /// token that asked, never the token) for `business` on UTC day `day`.
    /// `advertiser` is `None` only in records written before budgets were
    /// per advertiser: such a charge counts against every advertiser.
    BudgetSpent { advertiser: Option<String>, business: String, day: i32, epsilon_micros: u64 },
    /// Written first by a log compaction: the cursors of each partner's
    /// security feed that held records about people since erased. Replay
    /// keeps those cursors as tombstones, so a partner resuming its feed
    /// after a compaction misses nothing and sees nothing twice.
    SecurityFeedGaps { partners: Vec<(String, Vec<u64>)> },
    /// Written in the same group commit as the events of a batch sent with an
    /// `Idempotency-Key`: the key's digest (scoped to the caller, never the
    /// key itself) and the answer the batch got, so a resend within the
    /// window is answered the same and not applied again, even after a crash
    /// between the fsync and the acknowledgement. `Control::ts_ms` is when
    /// the key was first seen.
    BatchKeyed { key_digest: [u8; 16], answer: KeyedAnswer },
    /// Cluster mode: written by a node after the records of each message of
    /// the cluster's log it applied, in the same group commit: the message's
    /// position. The node's log is its copy of the cluster's up to the last
    /// of these, and it resumes the cluster's log after it.
    StreamPosition { position: LogPosition },
    /// Cluster mode: a person's secret (see `vault`) was needed by some
    /// node. Every node's vault derives the same secret from this nonce and
    /// the cluster's vault key (itself derived from the pseudonym key, so
    /// never in NATS); the first record for a person wins, and one for a
    /// person erased (or unknown) when it applies mints nothing.
    SecretMinted { subject: Pseudonym, nonce: [u8; 32] },
    /// Cluster mode: a disclosure to a partner, decided by the node that
    /// answered it at `Control::ts_ms`. Every node, applying it, checks the
    /// gate again at this point of the log and writes the audit record and
    /// the feed adds of what still passes, in log order: the cluster's audit
    /// chain and feeds are the same on every node.
    Disclosed(Box<DisclosedRecord>),
}

/// What one disclosure to a partner named (see [`ControlBody::Disclosed`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DisclosedRecord {
    /// Random, chosen by the node that submitted it (which waits to learn
    /// whether it was written).
    pub id: [u8; 16],
    pub partner: String,
    pub purpose: Purpose,
    /// The audit record's kind: `suggestions`, `audience_members`,
    /// `security_feed`, `product_feed`, `ads_feed`.
    pub kind: String,
    /// The people it named, in the audit record's order.
    pub people: Vec<Pseudonym>,
    /// Feed adds (`suggestion`, `audience_member`); empty for a disclosure
    /// the feeds do not keep.
    pub about: String,
    pub items: Vec<DisclosedItem>,
    /// Secrets minted with the disclosure for people who had none: an
    /// index into `people` and a nonce, as [`ControlBody::SecretMinted`]
    /// (one trip through the cluster's log instead of two).
    pub nonces: Vec<(u32, [u8; 32])>,
    /// The last message of the cluster's log the deciding node had applied
    /// when it decided: a withdrawal of anyone named applied after it (and
    /// before this record) refuses the disclosure, whatever its time says.
    pub decided_after: LogPosition,
}

/// One feed add of a [`DisclosedRecord`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DisclosedItem {
    pub partner_id: String,
    pub suggested: Option<String>,
    pub business: Option<String>,
    /// Indexes into [`DisclosedRecord::people`] of the people it involves.
    pub people: Vec<u32>,
}

/// Where a message is in the cluster's log: its epoch (one JetStream stream
/// each, see `cluster::log`) and its sequence in that stream. Ordered by
/// epoch, then sequence; the default (epoch 0, sequence 0) is before every
/// message.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default, Hash, serde::Serialize, serde::Deserialize)]
pub struct LogPosition {
    pub epoch: u64,
    pub sequence: u64,
}

impl std::fmt::Display for LogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.epoch, self.sequence)
    }
}

/// What `POST /v1/events` answered a keyed batch: only what the answer
/// needs (the edge's rejection messages name a line and a field, never a
/// value).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct KeyedAnswer {
    /// Events accepted.
    pub accepted: u64,
    /// Rejected lines, in order.
    pub rejected: Vec<KeyedRejection>,
    /// A digest of the request body this answered (`None` in records
    /// written before it was kept), so a different body sent under a used
    /// key is told apart from a resend.
    pub request: Option<[u8; 16]>,
}

/// One rejected line of a [`KeyedAnswer`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyedRejection {
    /// 1-based line (or array element) number.
    pub line: u64,
    /// The reason's wire name, e.g. `content`.
    pub reason: String,
    /// The message the client was sent.
    pub error: String,
}

vocabulary!(
    DecisionAction {
        Ban = 0 => "ban",
        Clear = 1 => "clear",
    }
);

/// Milliseconds in one UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day number (days since 1970-01-01) of an epoch-millisecond time.
pub fn day_of(ts_ms: i64) -> i32 {
    ts_ms.div_euclid(DAY_MS) as i32
}
