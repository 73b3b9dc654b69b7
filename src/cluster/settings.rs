//! The cluster's settings, kept in the JetStream key-value bucket
//! `proviso_cluster` under the key `settings`.
//!
//! Owns: writing them once (the first node to join: `create`, which fails
//! when another node got there first), reading them back, and refusing a
//! node whose pseudonym key, consent policy or partners differ from the
//! cluster's, naming which.
//! Never: stores the key or a token: only fingerprints (BLAKE3 with a
//! derived key of their own), from which nothing can be read back.

use serde::{Deserialize, Serialize};

use super::{ClusterError, MAX_PARTITIONS};
use crate::consent::Policy;
use crate::contract::Purpose;
use crate::edge::PseudonymKey;

/// The bucket holding the cluster's settings.
pub const BUCKET: &str = "proviso_cluster";
/// The key of the settings in [`BUCKET`].
const KEY: &str = "settings";

/// What every node of one cluster must share, as fingerprints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub key: String,
    pub policy: String,
    pub partners: String,
}

impl Identity {
    /// This node's identity: a fingerprint of its pseudonym key, of its
    /// consent policy, and of its partners (names and purposes).
    pub fn of(key: &PseudonymKey, policy: &Policy, partners: &[(String, Vec<Purpose>)]) -> Identity {
        let fingerprint = |context: &str, bytes: &[u8]| super::hex(&blake3::derive_key(context, bytes)[..16]);
        let mut partners: Vec<String> = partners
            .iter()
            .map(|(name, purposes)| {
                let mut purposes: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
                purposes.sort_unstable();
                format!("{name}={}", purposes.join(","))
            })
            .collect();
        partners.sort_unstable();
        Identity {
            key: fingerprint("proviso 2026 cluster pseudonym key fingerprint v1", key.bytes()),
            // Policy is a tree of BTreeMaps: its Debug form is one string
            // for one policy (on one version of proviso).
            policy: fingerprint("proviso 2026 cluster policy fingerprint v1", format!("{policy:?}").as_bytes()),
            partners: fingerprint("proviso 2026 cluster partners fingerprint v1", partners.join("\n").as_bytes()),
        }
    }

    /// What differs between this identity and `cluster`'s, in words.
    fn differences(&self, cluster: &Identity) -> Vec<&'static str> {
        let mut differs = Vec::new();
        if self.key != cluster.key {
            differs.push("pseudonym key");
        }
        if self.policy != cluster.policy {
            differs.push("consent policy");
        }
        if self.partners != cluster.partners {
            differs.push("partners");
        }
        differs
    }
}

/// The settings of one cluster, fixed by the first node to join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Virtual partitions of the event stream.
    pub partitions: u16,
    pub identity: Identity,
}

/// Joins the cluster of the NATS server behind `jetstream`: the first node
/// writes the settings (with `partitions`), every later one reads them, and
/// is refused ([`ClusterError::Differs`]) when its identity differs. A later
/// node's `partitions` is ignored: the count is the cluster's.
pub async fn join(
    jetstream: &async_nats::jetstream::Context,
    identity: &Identity,
    partitions: u16,
) -> Result<Settings, ClusterError> {
    if partitions == 0 || partitions > MAX_PARTITIONS {
        return Err(ClusterError::Partitions(partitions));
    }
    let store = bucket(jetstream).await?;
    let mine = Settings { partitions, identity: identity.clone() };
    let bytes = serde_json::to_vec(&mine).map_err(|error| ClusterError::Unreadable(error.to_string()))?;
    // `create` writes only when the key is absent: of two nodes joining a
    // new cluster at once, one wins and the other reads the winner's.
    let settings = match store.create(KEY, bytes.into()).await {
        Ok(_) => mine,
        Err(_) => {
            let stored = store
                .get(KEY)
                .await
                .map_err(ClusterError::jetstream)?
                .ok_or_else(|| ClusterError::JetStream("the cluster's settings vanished while joining".into()))?;
            serde_json::from_slice::<Settings>(&stored).map_err(|error| ClusterError::Unreadable(error.to_string()))?
        }
    };
    let differs = identity.differences(&settings.identity);
    if !differs.is_empty() {
        return Err(ClusterError::Differs(differs));
    }
    Ok(settings)
}

/// The cluster's key-value bucket [`BUCKET`], created when the cluster is
/// new (of two nodes creating it at once, the second opens the first's).
pub(super) async fn bucket(
    jetstream: &async_nats::jetstream::Context,
) -> Result<async_nats::jetstream::kv::Store, ClusterError> {
    if let Ok(store) = jetstream.get_key_value(BUCKET).await {
        return Ok(store);
    }
    let created = jetstream
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: BUCKET.to_string(),
            history: 1,
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        Err(error) => jetstream.get_key_value(BUCKET).await.map_err(|_| ClusterError::jetstream(error)),
    }
}
