//! Cluster mode's disclosures: one audit chain and one set of feeds for the
//! whole cluster, the same bytes on every node.
//!
//! Owns: turning a disclosure a node decided into a `Disclosed` record of
//! the cluster's log ([`Disclosure::disclose_in_cluster`]); the decider
//! every node's writer runs on that record at its point of the log (the
//! gate again, on state as it stands there: a withdrawal that came between
//! the decision and the record refuses it whole, and nothing of it is
//! written); and writing each group's outputs in log order with the times
//! the log carries: the audit record and feed adds of each disclosure let
//! through, the retractions of each withdrawal at its message's time.
//! Never: writes an output that is not in the cluster's log, or takes a
//! time from this node's clock.

use std::sync::Arc;

use super::feeds::Revocation;
use super::{DiscloseError, Disclosure};
use crate::consent::Policy;
use crate::contract::{Control, ControlBody, DisclosedItem, DisclosedRecord, Pseudonym, Purpose};
use crate::gate::{Gated, PartnerGrant};
use crate::pipeline::{Decision, DisclosedDecider, MessageOutputs, OnFile, OutputItem};
use crate::state::State;

/// The decider every node's writer runs on each `Disclosed` record: each
/// person it names must be known and pass the gate for the record's
/// partner and purpose at the record's time, on state as it stands at the
/// record; else the whole disclosure is refused. `partners`: each
/// configured partner's name and purposes (the same on every node: a node
/// whose partners differ does not join).
pub fn decider(policy: Policy, partners: Vec<(String, Vec<Purpose>)>) -> DisclosedDecider {
    Arc::new(move |state: &State, control: &Control| -> Option<Decision> {
        let ControlBody::Disclosed(record) = &control.body else { return None };
        let (name, purposes) = partners.iter().find(|(name, _)| *name == record.partner)?;
        let grant = PartnerGrant { name, purposes };
        let mut released = Vec::with_capacity(record.people.len());
        for person in &record.people {
            let subject = state.subjects.lookup(person)?;
            let gated =
                crate::gate::release_to_partner(state, &policy, &grant, subject, record.purpose, control.ts_ms, ())
                    .ok()?;
            released.push(gated);
        }
        let gated = Gated::gather(record.purpose, released).ok()?;
        let record: Gated<DisclosedRecord> = gated.map(|_| (**record).clone());
        Some(Box::new(record))
    })
}

/// When a disclosure was decided: the time, and the last position of the
/// cluster's log the state it was decided on had applied.
pub(crate) struct Decided {
    pub(crate) at_ms: i64,
    pub(crate) after: crate::contract::LogPosition,
}

/// One feed add of a disclosure before it is a record: the partner account,
/// the suggested account or the business, and the people involved (state's
/// dense indexes).
pub(crate) type FeedAdd = (String, Option<String>, Option<String>, Vec<u32>);

impl Disclosure {
    /// Cluster mode: appends the disclosure (`decided`, naming
    /// `people`, with `adds` for the feed of kind `about`, and a nonce for
    /// each of `unminted`, who have no secret yet) to the cluster's log, and
    /// waits until this node has written its outputs. `ordered`
    /// (the disclosure's ordering guard) is let go first: the writer may
    /// wait for it. [`DiscloseError::Redecide`] when the gate refused it at
    /// its point of the log: a withdrawal came in between.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn disclose_in_cluster(
        &self,
        ordered: std::sync::RwLockReadGuard<'_, ()>,
        partner: &str,
        decided: Decided,
        purpose: Purpose,
        kind: &str,
        people: &[(u32, Pseudonym)],
        about: &str,
        adds: Vec<FeedAdd>,
        unminted: &[Pseudonym],
    ) -> Result<(), DiscloseError> {
        drop(ordered);
        if people.is_empty() {
            return Ok(());
        }
        let index_of = |subject: u32| people.iter().position(|(s, _)| *s == subject).map(|i| i as u32);
        let items = adds
            .into_iter()
            .map(|(partner_id, suggested, business, involved)| DisclosedItem {
                partner_id,
                suggested,
                business,
                people: involved.into_iter().filter_map(index_of).collect(),
            })
            .collect();
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|error| crate::vault::VaultError::Random(error.to_string()))?;
        let mut nonces = Vec::with_capacity(unminted.len());
        for person in unminted {
            let Some(index) = people.iter().position(|(_, p)| p == person) else { continue };
            let mut nonce = [0u8; 32];
            getrandom::fill(&mut nonce).map_err(|error| crate::vault::VaultError::Random(error.to_string()))?;
            nonces.push((index as u32, nonce));
        }
        let record = DisclosedRecord {
            decided_after: decided.after,
            nonces,
            id,
            partner: partner.to_string(),
            purpose,
            kind: kind.to_string(),
            people: people.iter().map(|(_, p)| *p).collect(),
            about: about.to_string(),
            items,
        };
        if self.pipeline.disclose(decided.at_ms, record)? {
            Ok(())
        } else {
            Err(DiscloseError::Redecide)
        }
    }

    /// Writes one group's outputs, in log order (the writer's outputs
    /// hook): for each disclosure let through, its audit record and feed
    /// adds at its own time; for each withdrawal, the retractions at its
    /// message's time.
    pub(super) fn write_outputs(
        &self,
        messages: Vec<MessageOutputs>,
        at_mark: Option<&OnFile>,
    ) -> Result<OnFile, String> {
        // Audit records a process that died before moving the mark already
        // wrote for these messages (the first of them, in this order).
        let mut on_file = at_mark.map_or(0, |mark| self.audit.records().saturating_sub(mark.audit));
        // Feed records likewise: matched with the ones decided again.
        if let Some(feeds) = at_mark.and_then(|mark| mark.feeds.as_ref()) {
            self.feeds.resume_at(feeds).map_err(|error| error.to_string())?;
        }
        for message in messages {
            for item in message.items {
                match item {
                    OutputItem::Disclosed { at_ms, decision, handles, .. } => {
                        let Ok(record) = decision.downcast::<Gated<DisclosedRecord>>() else {
                            return Err("a disclosure decision of another kind".into());
                        };
                        let record = *record;
                        let named: Vec<String> = handles.iter().filter(|h| !h.is_empty()).cloned().collect();
                        let (partner, purpose, kind) =
                            (record.get().partner.clone(), record.purpose(), record.get().kind.clone());
                        if !named.is_empty() {
                            if on_file > 0 {
                                on_file -= 1;
                            } else {
                                // Before the record: a handle no erasure
                                // will list must be listed now.
                                self.pipeline.vault().list_unless_live(&named).map_err(|error| error.to_string())?;
                                self.audit
                                    .append(at_ms, &format!("partner:{partner}"), purpose.as_str(), &kind, named)
                                    .map_err(|error| error.to_string())?;
                            }
                        }
                        if record.get().items.is_empty() {
                            continue;
                        }
                        let about = record.get().about.clone();
                        let items = record.map(|record| {
                            record
                                .items
                                .into_iter()
                                .map(|item| {
                                    let ids = item
                                        .people
                                        .iter()
                                        .map(|&i| handles.get(i as usize).cloned().unwrap_or_default())
                                        .collect();
                                    (item.partner_id, item.suggested, item.business, ids)
                                })
                                .collect()
                        });
                        self.feeds.disclose(&partner, &about, items, at_ms).map_err(|error| error.to_string())?;
                    }
                    OutputItem::Withdrawals(withdrawals) => {
                        let revocations: Vec<Revocation> = withdrawals
                            .into_iter()
                            .map(|(withdrawal, subject)| Revocation {
                                subject,
                                purposes: withdrawal.purposes,
                                partner: withdrawal.partner,
                                reason: withdrawal.reason,
                            })
                            .collect();
                        self.feeds.revoke(&revocations, message.at_ms).map_err(|error| error.to_string())?;
                    }
                }
            }
        }
        Ok(OnFile { audit: self.audit.records() - on_file, feeds: Some(self.feeds.accounted()) })
    }
}
