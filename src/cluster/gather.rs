//! Gathered queries: each node of a cluster holds the usage of the people
//! of the partitions it covers, so a usage query asks every node for its
//! part and adds up the parts of a set of nodes that covers every
//! partition exactly once.
//!
//! Owns: the NATS subject and the shapes of a question and a part, asking
//! (one request, every node's reply collected until the covers fit, asked
//! again while they do not), choosing the parts (disjoint covers whose
//! union is every partition), and answering (each question to a handler,
//! the part back to the asker).
//! Never: computes or adds up an answer (`disclose::metrics` does, from
//! state), or applies the gate (the asking node does, on the sum).
//!
//! A part is exact for its partitions at a position of the cluster's log
//! at or after the question's (the answering node waits until it has
//! applied that far): parts of different nodes may stand at different
//! positions, which is read-your-writes for every partition. Two nodes may
//! both cover a partition for a moment while it moves (the old holder
//! until its writer drops it, the new one once it has rebuilt it): either
//! part is exact, and only one is taken.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::ClusterError;
use crate::contract::LogPosition;

/// Where questions go: every node subscribes and answers each.
pub const SUBJECT: &str = "proviso.gather.usage";

/// How long an asker waits for replies before asking again (a node whose
/// cover changed since answers anew).
const ASK_AGAIN: Duration = Duration::from_millis(500);

/// A question: answer `query` with the cluster's log applied up to `at`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ask {
    pub at: LogPosition,
    pub query: serde_json::Value,
}

/// One node's part: its answer over the partitions it covered when it
/// answered (`covered` of `partitions`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Part {
    /// The answering process (a random id of its life): an asker keeps
    /// the latest part of each.
    pub node: String,
    pub partitions: u16,
    pub covered: Vec<u16>,
    /// The answer, or why the node could not give one.
    pub answer: Result<serde_json::Value, String>,
}

/// Asks every node `ask` and returns parts whose covers are disjoint and
/// together every one of `partitions`, waiting at most `limit`.
pub async fn gather(
    client: &async_nats::Client,
    partitions: u16,
    ask: &Ask,
    limit: Duration,
) -> Result<Vec<Part>, ClusterError> {
    let payload = serde_json::to_vec(ask).map_err(|error| ClusterError::Gather(error.to_string()))?;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.map_err(ClusterError::jetstream)?;
    let deadline = tokio::time::Instant::now() + limit;
    // The latest part of each node: asked again, a node answers again.
    let mut parts: Vec<Part> = Vec::new();
    loop {
        client
            .publish_with_reply(SUBJECT, inbox.clone(), payload.clone().into())
            .await
            .map_err(ClusterError::jetstream)?;
        client.flush().await.map_err(ClusterError::jetstream)?;
        let again = (tokio::time::Instant::now() + ASK_AGAIN).min(deadline);
        while let Ok(Some(message)) = tokio::time::timeout_at(again, replies.next()).await {
            let Ok(part) = serde_json::from_slice::<Part>(&message.payload) else { continue };
            if part.partitions != partitions {
                continue;
            }
            // The question's own fault (too large an answer): every node
            // would say the same.
            if let Err(why) = &part.answer {
                return Err(ClusterError::Gather(format!("a node could not answer its part: {why}")));
            }
            match parts.iter_mut().find(|known| known.node == part.node) {
                Some(known) => *known = part,
                None => parts.push(part),
            }
            if let Some(chosen) = exact_cover(partitions, &parts) {
                let _ = replies.unsubscribe().await;
                return Ok(chosen.into_iter().map(|index| parts[index].clone()).collect());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let covered: std::collections::BTreeSet<u16> = parts.iter().flat_map(|p| p.covered.clone()).collect();
            let missing: Vec<u16> = (0..partitions).filter(|p| !covered.contains(p)).collect();
            return Err(ClusterError::Gather(format!(
                "no set of nodes covered every partition within {} s (partitions covered by none: {missing:?}); \
                 partitions are moving between nodes, try again",
                limit.as_secs()
            )));
        }
    }
}

/// Answers every question on [`SUBJECT`] with `answer`'s part, until the
/// subscription ends; no part (`None`: a node that cannot answer for its
/// partitions, which it gives up) is no reply. Each question is answered
/// on a task of its own. A part larger than the server takes in one
/// message is answered as an error saying so (the asker then answers 503
/// at once, not after its limit).
pub async fn serve<F, Fut>(client: async_nats::Client, answer: F) -> Result<(), ClusterError>
where
    F: Fn(Ask) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<Part>> + Send + 'static,
{
    let mut questions = client.subscribe(SUBJECT).await.map_err(ClusterError::jetstream)?;
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Some(message) = questions.next().await {
            let Some(reply) = message.reply.clone() else { continue };
            let Ok(ask) = serde_json::from_slice::<Ask>(&message.payload) else { continue };
            let (client, answer) = (client.clone(), Arc::clone(&answer));
            tokio::spawn(async move {
                let Some(mut part) = answer(ask).await else { return };
                let Ok(mut bytes) = serde_json::to_vec(&part) else { return };
                let most = client.server_info().max_payload;
                if bytes.len() > most {
                    let why =
                        format!("its part is {} bytes, more than NATS takes in one message ({most})", bytes.len());
                    part.answer = Err(why);
                    part.covered.clear();
                    let Ok(error) = serde_json::to_vec(&part) else { return };
                    bytes = error;
                }
                if let Err(error) = client.publish(reply, bytes.into()).await {
                    tracing::warn!(%error, "A part of a gathered query could not be sent.");
                }
            });
        }
    });
    Ok(())
}

/// Indexes of `parts` whose covers are pairwise disjoint and together
/// every one of `partitions`, if any set is (the first found, searching
/// from the lowest partition not yet covered).
pub fn exact_cover(partitions: u16, parts: &[Part]) -> Option<Vec<usize>> {
    // Nothing to search while some partition is in no part.
    let mut union = vec![false; usize::from(partitions)];
    for &p in parts.iter().flat_map(|part| &part.covered) {
        if let Some(slot) = union.get_mut(usize::from(p)) {
            *slot = true;
        }
    }
    if union.contains(&false) {
        return None;
    }
    let words = usize::from(partitions).div_ceil(64);
    let sets: Vec<Vec<u64>> = parts
        .iter()
        .map(|part| {
            let mut set = vec![0u64; words];
            for &p in part.covered.iter().filter(|p| **p < partitions) {
                set[usize::from(p) / 64] |= 1 << (p % 64);
            }
            set
        })
        .collect();
    let mut chosen = Vec::new();
    let mut covered = vec![0u64; words];
    search(partitions, &sets, &mut covered, &mut chosen).then_some(chosen)
}

fn search(partitions: u16, sets: &[Vec<u64>], covered: &mut [u64], chosen: &mut Vec<usize>) -> bool {
    let Some(first) = (0..partitions).find(|p| covered[usize::from(*p) / 64] & (1 << (p % 64)) == 0) else {
        return true;
    };
    let (word, bit) = (usize::from(first) / 64, 1u64 << (first % 64));
    for (index, set) in sets.iter().enumerate() {
        if set[word] & bit == 0 || set.iter().zip(covered.iter()).any(|(a, b)| a & b != 0) {
            continue;
        }
        for (c, s) in covered.iter_mut().zip(set) {
            *c |= s;
        }
        chosen.push(index);
        if search(partitions, sets, covered, chosen) {
            return true;
        }
        chosen.pop();
        for (c, s) in covered.iter_mut().zip(set) {
            *c &= !s;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(covered: &[u16]) -> Part {
        Part { node: String::new(), partitions: 7, covered: covered.to_vec(), answer: Ok(serde_json::Value::Null) }
    }

    #[test]
    fn the_parts_taken_cover_every_partition_once() {
        // A node that still covers a partition it gave up, and the one that
        // took it over; a node covering nothing adds nothing.
        let parts = [part(&[0, 1, 2]), part(&[2, 3]), part(&[3, 4, 5, 6]), part(&[])];
        assert_eq!(exact_cover(7, &parts), Some(vec![0, 2]));
        // Nobody covers partition 6 yet.
        assert_eq!(exact_cover(7, &[part(&[0, 1, 2]), part(&[3, 4, 5])]), None);
        // Only overlapping parts: no answer rather than one counting a partition twice.
        assert_eq!(exact_cover(7, &[part(&[0, 1, 2, 3]), part(&[3, 4, 5, 6])]), None);
        // One node covering everything answers alone.
        assert_eq!(exact_cover(7, &[part(&[0, 1]), part(&[0, 1, 2, 3, 4, 5, 6])]), Some(vec![1]));
        // Many overlapping parts and one partition in none: no search at
        // all (it grew threefold with each part a re-ask added).
        let many: Vec<Part> = (0..40u16)
            .map(|n| Part { partitions: 64, ..part(&(0..63).filter(|p| (p + n) % 3 != 0).collect::<Vec<_>>()) })
            .collect();
        assert_eq!(exact_cover(64, &many), None);
        // With a node of nothing, whole covers still fit.
        assert_eq!(
            exact_cover(1, &[Part { partitions: 1, ..part(&[]) }, Part { partitions: 1, ..part(&[0]) }]),
            Some(vec![1])
        );
    }
}
