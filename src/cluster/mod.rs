//! Cluster mode on NATS JetStream (issue 16, in progress): the parts of it
//! that talk to NATS. `proviso serve --nats URL` uses `settings` (join) and
//! `log` (the cluster's log every node applies, through
//! `pipeline/cluster.rs`); `stream` and `batch` (the partitioned event
//! stream) wait for partition ownership.
//!
//! Owns: where a person's events go (their partition, from their
//! pseudonym: [`partition_of`]; a batch split into one message per
//! partition: `batch`), the cluster's log (`log`: a batch's records in
//! order, deduplicated by ids from the request, kept for a retention) and
//! the partitioned event stream in JetStream (`stream`: publish
//! deduplicated by message id, acknowledged only once stored and fsynced,
//! erase one message by overwriting it), and the cluster's settings in a
//! JetStream key-value bucket (`settings`: the partition count, fixed when
//! the cluster is first made, and fingerprints of the pseudonym key, the
//! consent policy and the partners, which every node must share).
//! Never: puts a raw number, message content or the pseudonym key itself
//! into NATS (events arrive here already through the edge; the key and the
//! configuration leave only as keyed fingerprints), or decides what may
//! leave proviso (that stays the gate's).

pub mod batch;
pub mod gather;
pub mod leases;
pub mod local;
pub mod log;
pub mod settings;
pub mod stream;

pub use crate::contract::LogPosition;
use crate::contract::Pseudonym;

/// Virtual partitions of a new cluster unless told otherwise.
pub const DEFAULT_PARTITIONS: u16 = 64;

/// Most partitions a cluster may have (one JetStream subject each).
pub const MAX_PARTITIONS: u16 = 4096;

/// The partition of a person ([`Pseudonym::partition`]).
pub fn partition_of(pseudonym: &Pseudonym, partitions: u16) -> u16 {
    pseudonym.partition(partitions)
}

/// Lowercase hex of `bytes` (fingerprints, message ids).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of [`hex`]'s text; `None` for anything else.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes().chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()).collect()
}

/// The request digest a message id of the cluster's log was made from
/// (`<32 hex digits>-<part>`, see [`log::ClusterLog::append`]); `None` for
/// any other id.
pub fn request_of(message_id: &str) -> Option<[u8; 16]> {
    let (digits, _part) = message_id.split_once('-')?;
    unhex(digits)?.try_into().ok()
}

/// Why cluster mode could not go on. Messages name what to do; none names
/// a person.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("NATS at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error(
        "this node differs from its cluster in: {}; every node needs the same PROVISO_PSEUDONYM_KEY, \
         consent policy and partners as the first node to join",
        .0.join(", ")
    )]
    Differs(Vec<&'static str>),
    #[error("a cluster has 1 to {MAX_PARTITIONS} partitions; asked for {0}")]
    Partitions(u16),
    #[error(
        "this node's copy of the cluster's log ends at message {position} (epoch:sequence), and the cluster's \
         log no longer holds the message after it (it holds epoch {first} on): the messages between are past \
         its retention (erasure_compaction_seconds). Restore this node from another node's backup (`proviso \
         backup`, then `proviso restore`) and start it again"
    )]
    Behind { position: crate::contract::LogPosition, first: crate::contract::LogPosition },
    #[error("the cluster's settings in NATS do not read ({0}); they were not written by this version of proviso")]
    Unreadable(String),
    #[error("gathering a query's parts from the cluster's nodes: {0}")]
    Gather(String),
}

impl ClusterError {
    fn jetstream(error: impl std::fmt::Display) -> ClusterError {
        ClusterError::JetStream(error.to_string())
    }
}

/// Connects to the NATS server at `url` and opens its JetStream context.
pub async fn connect(url: &str) -> Result<async_nats::jetstream::Context, ClusterError> {
    connect_with(url, &NatsAuth::default()).await
}

/// How a node proves itself to NATS, and whether over TLS. Not `Debug`:
/// it holds secrets.
#[derive(Clone, Default)]
pub struct NatsAuth {
    /// A user of the server's `authorization { users = [...] }`, and its password.
    pub user: Option<(String, String)>,
    /// The server's `authorization { token: ... }`.
    pub token: Option<String>,
    /// The PEM file of the CA that signed the server's certificate: TLS only.
    pub ca: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAuth")
            .field("user", &self.user.as_ref().map(|(user, _)| user))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("ca", &self.ca)
            .finish()
    }
}

/// [`connect`] with credentials and TLS. An error never repeats a password
/// or token.
pub async fn connect_with(url: &str, auth: &NatsAuth) -> Result<async_nats::jetstream::Context, ClusterError> {
    let mut options = async_nats::ConnectOptions::new();
    if let Some((user, password)) = &auth.user {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &auth.token {
        options = options.token(token.clone());
    }
    if let Some(ca) = &auth.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    let client = options.connect(url).await.map_err(|error| {
        let detail = match error.kind() {
            async_nats::ConnectErrorKind::AuthorizationViolation => {
                "the server refused this node's credentials (authorization violation): set nats_user and \
                 nats_password, or nats_token, as its authorization block says"
                    .to_string()
            }
            async_nats::ConnectErrorKind::Tls => tls_failed(&error),
            // A certificate refused comes as an I/O error.
            async_nats::ConnectErrorKind::Io if error.to_string().contains("certificate") => tls_failed(&error),
            _ => error.to_string(),
        };
        ClusterError::Connect { url: url.to_string(), detail }
    })?;
    Ok(async_nats::jetstream::new(client))
}

fn tls_failed(error: &async_nats::ConnectError) -> String {
    format!(
        "TLS failed ({error}): nats_ca must name the CA that signed the server's certificate, whose names must \
         include the host in the URL"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_message_id_gives_back_the_request_it_was_made_from() {
        let request = [0xa5u8; 16];
        let id = format!("{}-3", super::hex(&request));
        assert_eq!(super::request_of(&id), Some(request));
        for other in ["", "-0", "a5-0", "not hex at all, not hex at all!!-0", &super::hex(&request)] {
            assert_eq!(super::request_of(other), None, "{other:?}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every pseudonym has one partition below the count, whatever the count.
        #[test]
        fn a_partition_is_below_the_count(bytes in any::<[u8; 16]>(), partitions in 1u16..=MAX_PARTITIONS) {
            let pseudonym = Pseudonym::from_stored(bytes);
            let partition = partition_of(&pseudonym, partitions);
            prop_assert!(partition < partitions);
            prop_assert_eq!(partition, partition_of(&pseudonym, partitions));
        }
    }

    /// Pseudonyms (keyed hashes) spread evenly over 64 partitions: no
    /// partition gets more than twice its share of 64,000 people.
    #[test]
    fn people_spread_over_the_partitions() {
        let mut counts = [0u32; DEFAULT_PARTITIONS as usize];
        for n in 0u32..64_000 {
            let hash = blake3::hash(&n.to_le_bytes());
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&hash.as_bytes()[..16]);
            counts[partition_of(&Pseudonym::from_stored(bytes), DEFAULT_PARTITIONS) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (500..=2000).contains(&c)), "{counts:?}");
    }
}
