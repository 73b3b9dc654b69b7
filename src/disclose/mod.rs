//! The disclosure layer: between the processors and the outputs, the one
//! place that decides, records and shapes what leaves proviso about people.
//!
//! Owns: the sequence gate → audit record → feed record for every partner
//! disclosure (`partners`), k-anonymity, noise and the privacy budget of
//! audience sizes (`audiences`), the subject-facing report and consent view
//! (`subjects`), usage series for analysts (`metrics`), retraction when a
//! person withdraws (`Disclosure::revoke`), reconciliation of the feeds
//! at start, and the audit log (`audit/`) and purpose feeds (`feeds/`)
//! those disclosures are written to. Every body it hands out is a
//! `Gated<T>` whose type can be built only in this layer.
//! Never: authenticates (callers say who asked), formats HTTP or terminal
//! output, or lets a body about a person out without the gate.

pub mod audiences;
pub mod audit;
mod cluster;
pub mod feeds;
pub mod metrics;
pub mod partners;
pub mod subjects;

pub use cluster::decider;

use std::collections::HashMap;
use std::sync::Arc;

use crate::contract::{Pseudonym, Purpose};
use crate::edge::PseudonymKey;
use crate::gate::{GateError, Gated, PartnerGrant};
use crate::pipeline::{Pipeline, PipelineError};
use crate::state::State;
use crate::vault::{SubjectSecret, Vault, VaultError};
use audit::{AuditError, AuditLog};
use feeds::{FeedError, Feeds, Revocation};

/// The private field of every body this layer hands out: only `disclose/`
/// can write it, so a body about people can be built nowhere else (not in
/// an HTTP handler, not in another crate), and leaves only as a `Gated<T>`.
#[derive(Debug)]
pub struct Sealed(());

/// One partner network as the disclosure layer knows it.
#[derive(Clone, Debug)]
pub struct PartnerSettings {
    pub name: String,
    /// Purposes it is configured to receive.
    pub purposes: Vec<Purpose>,
    /// Key of the `h_` handles it sees.
    pub handle_key: PseudonymKey,
}

impl PartnerSettings {
    fn grant(&self) -> PartnerGrant<'_> {
        PartnerGrant { name: &self.name, purposes: &self.purposes }
    }
}

/// One disclosure to one partner in the making: who it is for, state as of
/// one instant (the caller holds the state read lock, only while it decides:
/// see [`Disclosure::disclosing`]), the policy and the instant. Every value
/// about a person goes out through [`Reading::release`].
pub(crate) struct Reading<'a> {
    pub(crate) settings: &'a PartnerSettings,
    pub(crate) state: &'a State,
    pub(crate) policy: &'a crate::consent::Policy,
    pub(crate) at_ms: i64,
}

impl Reading<'_> {
    /// Releases `value` about `subject` to this partner for `purpose` now.
    pub(crate) fn release<T>(&self, subject: u32, purpose: Purpose, value: T) -> Result<Gated<T>, GateError> {
        let grant = self.settings.grant();
        crate::gate::release_to_partner(self.state, self.policy, &grant, subject, purpose, self.at_ms, value)
    }

    /// Whether `subject` may be named to this partner for `purpose` now.
    pub(crate) fn allows(&self, subject: u32, purpose: Purpose) -> bool {
        self.release(subject, purpose, ()).is_ok()
    }

    /// Releases `value` about the people behind stored `r_` handles again:
    /// each must still have a secret (not erased), be known, and pass
    /// [`Reading::release`]. `None` when one does not, or when the handles
    /// name nobody.
    pub(crate) fn release_again<T>(
        &self,
        vault: &Vault,
        purpose: Purpose,
        handles: &[String],
        value: T,
    ) -> Option<Gated<T>> {
        let mut people = Vec::with_capacity(handles.len());
        for handle in handles {
            let pseudonym = vault.owner_of_record_handle(handle)?;
            people.push(self.state.subjects.lookup(&pseudonym)?);
        }
        let (last, others) = people.split_last()?;
        if !others.iter().all(|&other| self.allows(other, purpose)) {
            return None;
        }
        self.release(*last, purpose, value).ok()
    }
}

/// k, epsilon and the daily budget of audience sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AudiencePolicy {
    /// Smallest audience whose size or members are released.
    pub k: u64,
    /// Epsilon charged per noised answer.
    pub epsilon: f64,
    /// Epsilon one advertiser may spend per business per UTC day.
    pub daily_epsilon: f64,
    /// Every size is noised (`audience_epsilon` configured).
    pub noise_required: bool,
}

/// Why a disclosure was not made. Callers map each to their own answer
/// (the HTTP layer to a status and code); messages never name a person.
#[derive(Debug, thiserror::Error)]
pub enum DiscloseError {
    #[error("no partner of that name is configured")]
    PartnerNotFound,
    #[error("this partner is not configured to receive {0}")]
    NotConfigured(&'static str),
    #[error("unknown purpose; expected one of: {0}")]
    UnknownPurpose(String),
    #[error("feeds exist for security, product and ads")]
    NoSuchFeed,
    #[error("no account with that id is linked at this partner")]
    AccountNotLinked,
    #[error("proviso holds nothing about this subject")]
    SubjectNotFound,
    #[error("{0}")]
    InvalidQuery(String),
    #[error("your privacy budget for this business's sizes is spent for today (UTC); ask again tomorrow")]
    BudgetSpent,
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Cluster mode, inside this layer only: the gate refused the
    /// disclosure at its point of the cluster's log (a withdrawal came
    /// between deciding and logging it); nothing of it was written, and
    /// [`Disclosure::deciding`] decides again.
    #[error("the disclosure was refused at its point of the cluster's log")]
    Redecide,
}

/// How many times a disclosure is decided before it gives up (cluster
/// mode: each time the gate refused it at its point of the log).
const DECIDE_ROUNDS: usize = 4;

/// The disclosure layer of one running proviso: the pipeline it reads, the
/// audit log and feeds it writes, and what each partner may receive.
pub struct Disclosure {
    pipeline: Arc<Pipeline>,
    audit: Arc<AuditLog>,
    feeds: Arc<Feeds>,
    partners: Vec<PartnerSettings>,
    audience: AudiencePolicy,
    /// Serializes checking and charging budgets, so two concurrent requests
    /// cannot both spend the last of one.
    charging: std::sync::Mutex<()>,
    /// Orders disclosures against withdrawals, apart from the state lock so
    /// that no fsync happens under the state lock. Every disclosure holds it
    /// shared from reading state until its audit and feed records are
    /// durable; the writer's revocation hook ([`Disclosure::revoke`]) holds
    /// it exclusively while it writes a group's retractions, before the
    /// group is acknowledged. So a disclosure decided on state from before a
    /// refusal is on file before that refusal's retractions are written (and
    /// is retracted by them), and one that starts later reads state with the
    /// refusal applied. Never commit to the pipeline while holding it: the
    /// writer may be waiting for it.
    ordering: std::sync::RwLock<()>,
}

impl Disclosure {
    /// Opens the audit log and the feeds of the pipeline's data dir,
    /// retracts what the gate would refuse now (changes made while no server
    /// ran, e.g. by `proviso ingest`), and subscribes to the pipeline's
    /// withdrawals and compactions.
    pub fn open(
        pipeline: Arc<Pipeline>,
        partners: Vec<PartnerSettings>,
        audience: AudiencePolicy,
    ) -> Result<Arc<Disclosure>, DiscloseError> {
        let data_dir = pipeline.data_dir().to_path_buf();
        let audit = Arc::new(AuditLog::open(&data_dir)?);
        if audit.records() == 0 {
            // No handle is on file, so the vault's list of erased handles
            // starts whole and an erasure's scrub works in place from the
            // first one (docs/privacy.md, "Erasure").
            pipeline.vault().start_scrub_list()?;
        }
        let feeds = Arc::new(Feeds::open(&data_dir)?);
        let disclosure = Arc::new(Disclosure {
            pipeline: Arc::clone(&pipeline),
            audit,
            feeds,
            partners,
            audience,
            charging: std::sync::Mutex::new(()),
            ordering: std::sync::RwLock::new(()),
        });
        // The hooks first, holding the layer weakly (the pipeline does not
        // keep it alive): a compaction the writer starts now, for an erasure
        // replayed from the log, then rewrites the outputs itself.
        let on_withdrawal = Arc::downgrade(&disclosure);
        pipeline.set_revocation_hook(Arc::new(move |withdrawals| {
            let Some(disclosure) = on_withdrawal.upgrade() else { return };
            if let Err(error) = disclosure.revoke(withdrawals) {
                tracing::error!(%error, "Retractions could not be written; they will be written at the next start.");
            }
        }));
        let on_backup = Arc::downgrade(&disclosure);
        pipeline.set_backup_hook(Arc::new(move |dest| {
            let disclosure = on_backup.upgrade().ok_or("the disclosure layer is closing")?;
            let audit = disclosure.audit.copy_to(dest).map_err(|error| error.to_string())?;
            let feeds = disclosure.feeds.copy_to(dest).map_err(|error| error.to_string())?;
            Ok((audit, feeds))
        }));
        let on_compaction = Arc::downgrade(&disclosure);
        pipeline.set_compaction_hook(Arc::new(move || {
            if let Some(disclosure) = on_compaction.upgrade() {
                disclosure.compact();
            }
        }));
        if pipeline.is_cluster() {
            // Outputs come from the cluster's log, in its order, with its
            // times: nothing is reconciled against this node's clock.
            let writing = Arc::downgrade(&disclosure);
            let hook: crate::pipeline::OutputsHook = Arc::new(move |messages, at_mark| match writing.upgrade() {
                Some(disclosure) => disclosure.write_outputs(messages, at_mark),
                None => Err("the disclosure layer is closing".into()),
            });
            let on_file = crate::pipeline::OnFile {
                audit: disclosure.audit.records(),
                feeds: Some(disclosure.feeds.accounted()),
            };
            pipeline.set_outputs_hook(hook, on_file);
        }
        let retracted = if pipeline.is_cluster() { 0 } else { disclosure.reconcile()? };
        let owed = data_dir.join(crate::pipeline::OUTPUTS_OWED).exists();
        let mut vault_done = true;
        if owed {
            // A crash came after a compaction's log swap and before its
            // outputs were rewritten (or the writer compacted at this start
            // before the hook was set): finish them.
            tracing::info!("Finishing a compaction a crash interrupted: vault, feeds and audit log.");
            if let Err(error) = pipeline.vault().compact() {
                tracing::error!(%error, "The vault could not be compacted; retried at the next start.");
                vault_done = false;
            }
        }
        if vault_done && (owed || retracted > 0) {
            // The retractions just written copy the adds they withdraw (an
            // erased person's partner ids among them): redact them now, not
            // at the next erasure.
            disclosure.compact();
        }
        Ok(disclosure)
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    pub fn feeds(&self) -> &Feeds {
        &self.feeds
    }

    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    pub fn audience_policy(&self) -> AudiencePolicy {
        self.audience
    }

    fn partner(&self, name: &str) -> Result<&PartnerSettings, DiscloseError> {
        self.partners.iter().find(|partner| partner.name == name).ok_or(DiscloseError::PartnerNotFound)
    }

    /// A disclosure to `partner` over `state`, now.
    fn reading<'a>(&'a self, state: &'a State, partner: &str) -> Result<Reading<'a>, DiscloseError> {
        Ok(Reading {
            settings: self.partner(partner)?,
            state,
            policy: self.pipeline.policy(),
            at_ms: self.pipeline.clock().now_ms(),
        })
    }

    /// Held (shared) by one disclosure from its reading of state until its
    /// records are durable; see the `ordering` field.
    fn disclosing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.ordering.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the retractions of state's withdrawals (refusals, bans,
    /// unlinkings, erasures) before they are acknowledged: first waits for
    /// the disclosures in flight (decided before the withdrawal applied) to
    /// be on file, so their adds are retracted too.
    pub fn revoke(&self, withdrawals: &[crate::state::Withdrawal]) -> Result<usize, DiscloseError> {
        let _withdrawing = self.ordering.write().unwrap_or_else(|p| p.into_inner());
        let revocations = Revocation::from_withdrawals(withdrawals, self.pipeline.vault());
        Ok(self.feeds.revoke(&revocations, self.pipeline.clock().now_ms())?)
    }

    /// After the log's compaction: the feeds and the audit log keep no byte
    /// of an erased person's partner ids or handles.
    pub fn compact(&self) {
        compact_outputs(self.pipeline.data_dir(), &self.feeds, &self.audit, self.pipeline.vault());
    }

    /// Retracts every live feed disclosure the gate would refuse now;
    /// returns how many.
    fn reconcile(&self) -> Result<usize, DiscloseError> {
        let live = self.feeds.live()?;
        if live.is_empty() {
            return Ok(0);
        }
        let at_ms = self.pipeline.clock().now_ms();
        let mut revocations = Vec::new();
        {
            let state = self.pipeline.state();
            for (partner, purpose, record) in live {
                for subject in &record.subjects {
                    if !self.still_allowed(&state, &partner, purpose, subject) {
                        revocations.push(Revocation {
                            subject: subject.clone(),
                            purposes: vec![purpose],
                            partner: Some(partner.clone()),
                            reason: "no_longer_allowed",
                        });
                    }
                }
            }
        }
        let retracted = self.feeds.revoke(&revocations, at_ms)?;
        if retracted > 0 {
            tracing::info!(retracted, "Retracted feed records no longer allowed since the last run.");
        }
        Ok(retracted)
    }

    /// Whether the person behind a stored `r_` handle may still be named to
    /// `partner` for `purpose` now.
    fn still_allowed(&self, state: &State, partner: &str, purpose: Purpose, handle: &str) -> bool {
        let Ok(reading) = self.reading(state, partner) else { return false };
        reading.release_again(self.pipeline.vault(), purpose, &[handle.to_string()], ()).is_some()
    }

    /// Runs `disclose` until the gate lets it through at its point of the
    /// cluster's log (in embedded mode, once): a disclosure refused there
    /// wrote nothing, and is decided again on the state of then.
    fn deciding<T>(&self, mut disclose: impl FnMut() -> Result<T, DiscloseError>) -> Result<T, DiscloseError> {
        for _ in 0..DECIDE_ROUNDS {
            match disclose() {
                Err(DiscloseError::Redecide) => {}
                done => return done,
            }
        }
        Err(PipelineError::Cluster(
            "the disclosure was refused at its point of the cluster's log each time it was \
             decided (consent changing meanwhile); try again"
                .into(),
        )
        .into())
    }

    /// Records a disclosure of `people` to `partner` before it leaves; a
    /// disclosure that cannot be audited is not made. Runs without the state
    /// lock (it mints secrets and fsyncs), under [`Disclosure::disclosing`]
    /// (`ordered`), on state that had applied the cluster's log up to
    /// `decided_after` (cluster mode). Returns each subject's secret, from which the caller
    /// derives the identifiers it sends (`h_`) and records (`r_`, the feeds
    /// ledger). In cluster mode the disclosure goes through the cluster's
    /// log instead, its feed `adds` (of kind `about`) with it, and `ordered`
    /// is let go (see [`Disclosure::disclose_in_cluster`]); the caller then
    /// writes no feed record itself.
    #[allow(clippy::too_many_arguments)]
    fn audit_disclosure(
        &self,
        ordered: &mut Option<std::sync::RwLockReadGuard<'_, ()>>,
        partner: &str,
        at_ms: i64,
        decided_after: crate::contract::LogPosition,
        purpose: Purpose,
        kind: &str,
        people: Vec<(u32, Pseudonym)>,
        about: &str,
        adds: Vec<cluster::FeedAdd>,
    ) -> Result<HashMap<u32, SubjectSecret>, DiscloseError> {
        let pseudonyms: Vec<Pseudonym> = people.iter().map(|(_, p)| *p).collect();
        if self.pipeline.vault().is_cluster() {
            // People without a secret get one minted with the disclosure.
            let missing = self.pipeline.vault().missing(&pseudonyms);
            if let Some(guard) = ordered.take() {
                let decided = cluster::Decided { at_ms, after: decided_after };
                self.disclose_in_cluster(guard, partner, decided, purpose, kind, &people, about, adds, &missing)?;
            }
            let secrets = match self.pipeline.vault().secrets_for(&pseudonyms) {
                // Erased since: the disclosure named nobody it could.
                Err(VaultError::NotMinted) => return Err(DiscloseError::Redecide),
                secrets => secrets?,
            };
            return Ok(people.into_iter().map(|(s, _)| s).zip(secrets).collect());
        }
        let secrets = self.pipeline.vault().secrets_for(&pseudonyms)?;
        let ids: Vec<String> = secrets.iter().map(SubjectSecret::record_handle).collect();
        if !ids.is_empty() {
            self.audit.append(at_ms, &format!("partner:{partner}"), purpose.as_str(), kind, ids)?;
        }
        Ok(people.into_iter().map(|(s, _)| s).zip(secrets).collect())
    }
}

/// The pseudonyms of `subjects` (dense indexes) that state knows, copied out
/// of the state lock for [`Disclosure::audit_disclosure`].
fn pseudonyms_of(state: &State, subjects: impl IntoIterator<Item = u32>) -> Vec<(u32, Pseudonym)> {
    subjects.into_iter().filter_map(|s| state.subjects.get(s).map(|r| (s, r.pseudonym))).collect()
}

/// After the log's compaction (and the vault's): the feeds and the audit
/// log keep no byte of an erased person's partner ids or handles (see
/// `Feeds::compact`, `AuditLog::scrub`); once both are done, the mark that
/// the compaction's outputs are owed ([`crate::pipeline::OUTPUTS_OWED`]) is
/// removed. Also run by `proviso compact` without a server.
pub fn compact_outputs(data_dir: &std::path::Path, feeds: &Feeds, audit: &AuditLog, vault: &Vault) {
    let feeds_done = match feeds.compact() {
        Ok(redacted) => {
            tracing::info!(redacted, "Feeds compacted: withdrawn records hold no identifier.");
            true
        }
        Err(error) => {
            tracing::error!(%error, "Feeds could not be compacted; retried at the next start or compaction.");
            false
        }
    };
    let audit_done = scrub_audit(audit, vault);
    if feeds_done && audit_done {
        let owed = data_dir.join(crate::pipeline::OUTPUTS_OWED);
        let removed = match std::fs::remove_file(&owed) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => std::fs::File::open(data_dir).and_then(|dir| dir.sync_all()),
        };
        if let Err(error) = removed {
            tracing::warn!(%error, "The compaction's outputs are done but its mark stays; they are redone at the next start.");
        }
    }
}

/// The audit log's part of [`compact_outputs`]: in place, only the records
/// that may name a handle erased since the last scrub, when the vault
/// listed their keys; the whole log otherwise (or when that fails).
/// Returns whether the log owes nothing more.
fn scrub_audit(audit: &AuditLog, vault: &Vault) -> bool {
    let owed = vault.scrub_owed();
    let keys = match owed.as_ref().map(|owed| &owed.owed) {
        Ok(crate::vault::ScrubOwed::Keys { keys, .. }) => Some(keys),
        Ok(crate::vault::ScrubOwed::Everything { .. }) => None,
        Err(error) => {
            tracing::warn!(%error, "The vault's list of erased handles could not be read; scrubbing the audit log whole.");
            None
        }
    };
    let in_place = keys.and_then(|keys| {
        let keep = |handle: &str| vault.owner_of_record_handle(handle).is_some();
        timed_scrub("in_place", || audit.scrub_keys(keys, keep))
            .map_err(
                |error| tracing::warn!(%error, "The audit log could not be scrubbed in place; scrubbing it whole."),
            )
            .ok()
    });
    if in_place.is_none() {
        let live = vault.live_record_handles();
        if let Err(error) = timed_scrub("whole_log", || audit.scrub(|handle| live.contains(handle))) {
            tracing::error!(%error, "Audit log could not be scrubbed; retried at the next start or compaction.");
            return false;
        }
    }
    if let Ok(owed) = owed {
        if let Err(error) = vault.scrub_done(owed) {
            // The keys stay listed (or the list untrusted): the next
            // compaction scrubs them again, which finds nothing more to do.
            tracing::warn!(%error, "Could not clear the vault's list of erased handles; the next compaction goes over them again.");
        }
    }
    true
}

/// Runs one way of scrubbing the audit log (`in_place` or `whole_log`)
/// and reports what it did and took (metric and log line).
fn timed_scrub(way: &'static str, scrub: impl FnOnce() -> Result<usize, AuditError>) -> Result<usize, AuditError> {
    let started = std::time::Instant::now();
    let scrubbed = scrub()?;
    let duration = started.elapsed();
    crate::telemetry::AuditScrubbed { way, handles: scrubbed, duration }.emit();
    let how = if way == "in_place" { "in place" } else { "whole" };
    tracing::info!(
        scrubbed,
        seconds = duration.as_secs_f64(),
        "Audit log scrubbed {how}: erased people's handles replaced by digests."
    );
    Ok(scrubbed)
}

/// Formats epoch milliseconds as RFC 3339 UTC (every time a body carries).
pub fn rfc3339(ts_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    use super::{AudiencePolicy, Disclosure, PartnerSettings};
    use crate::contract::{Purpose, Region};
    use crate::edge::{PseudonymKey, Source};
    use crate::pipeline::{Pipeline, PipelineOptions};

    fn open(dir: &std::path::Path) -> (Arc<Pipeline>, Arc<Disclosure>) {
        let options = PipelineOptions {
            data_dir: dir.to_path_buf(),
            pseudonym_key: Some(PseudonymKey::from_bytes([7; 32])),
            default_region: Region::UNKNOWN,
            policy: crate::consent::Policy::default_policy(),
            segment_bytes: 1 << 20,
            snapshot_every_records: 1_000_000,
            default_partner: "net".to_string(),
            rules_path: None,
            erasure_compaction: Duration::from_secs(3600),
            max_future_skew_ms: 86_400_000,
            clock: crate::clock::Clock::system(),
            idempotency_window: Duration::from_secs(3600),
            cluster: None,
        };
        let pipeline = Arc::new(Pipeline::open(options).expect("open pipeline"));
        let partner = PartnerSettings {
            name: "net".to_string(),
            purposes: vec![Purpose::Product],
            handle_key: PseudonymKey::from_bytes([9; 32]),
        };
        let audience = AudiencePolicy { k: 100, epsilon: 1.0, daily_epsilon: 10.0, noise_required: false };
        let disclosure = Disclosure::open(Arc::clone(&pipeline), vec![partner], audience).expect("open disclosure");
        (pipeline, disclosure)
    }

    fn commit(pipeline: &Pipeline, body: &str) -> Result<u64, crate::pipeline::PipelineError> {
        let prepared = pipeline.prepare(body.as_bytes(), Source::Service);
        assert!(prepared.rejected.is_empty(), "rejected: {:?}", prepared.rejected);
        pipeline.commit_blocking(prepared)
    }

    /// The race the disclosure lock closes: a refusal applied while a
    /// disclosure decided before it is still being written (its fsyncs now
    /// run without the state lock) is not acknowledged until that disclosure
    /// is on file, so its retractions cover it.
    #[test]
    fn refusal_is_not_acknowledged_while_a_disclosure_is_in_flight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pipeline, disclosure) = open(dir.path());
        let now = crate::clock::now_ms();
        let phone = "+14155550123";
        let register = format!(
            r#"{{"type":"register","ts":{now},"phone":"{phone}","device":"d1","platform":"android"}}"#,
            now = now - 60_000
        );
        commit(&pipeline, &register).expect("register");
        let in_flight = disclosure.disclosing();
        let (answered, answer) = mpsc::channel();
        let writer_side = Arc::clone(&pipeline);
        let refusal =
            format!(r#"{{"type":"consent","ts":{now},"phone":"{phone}","purpose":"product","granted":false}}"#);
        let refusing = std::thread::spawn(move || {
            let _ = answered.send(commit(&writer_side, &refusal));
        });
        assert!(
            answer.recv_timeout(Duration::from_millis(300)).is_err(),
            "the refusal was acknowledged while a disclosure decided before it was still being written"
        );
        drop(in_flight);
        answer
            .recv_timeout(Duration::from_secs(30))
            .expect("acknowledged once the disclosure is on file")
            .expect("committed");
        refusing.join().expect("refusing thread");
        // The state lock was never held by the disclosure: readers went on.
        assert!(pipeline.state().subjects.acting() >= 1);
    }
}
