//! proviso's own telemetry: every Prometheus series and internal event.
//!
//! Owns: metric names, help texts, labels, and the structs call sites emit
//! (`EventsAccepted`, `EventsRejected`, ...). Each `emit()` writes the counter
//! and, where an operator should know, the log line.
//! Never: puts a subject id, pseudonym, token or field value in a label or a
//! log field. Labels come from closed enums only.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::contract::Purpose;
use crate::edge::RejectReason;

pub const EVENTS_ACCEPTED_TOTAL: &str = "proviso_events_accepted_total";
pub const EVENTS_REJECTED_TOTAL: &str = "proviso_events_rejected_total";
pub const INGEST_DURATION_SECONDS: &str = "proviso_ingest_duration_seconds";
pub const LOG_SIZE_BYTES: &str = "proviso_log_size_bytes";
pub const LOG_RECORDS: &str = "proviso_log_records";
pub const SUBJECTS: &str = "proviso_subjects";
pub const STATE_HEAP_BYTES: &str = "proviso_state_heap_bytes";
pub const GATE_DECISIONS_TOTAL: &str = "proviso_gate_decisions_total";
pub const HTTP_REQUESTS_TOTAL: &str = "proviso_http_requests_total";
pub const ABUSE_ACTIONS_TOTAL: &str = "proviso_abuse_actions_total";
pub const BANNED_EVENTS_TOTAL: &str = "proviso_banned_subject_events_total";
pub const SUSPICIOUS_DOMAINS_TOTAL: &str = "proviso_abuse_suspicious_domains_total";
pub const RULES_RELOADS_TOTAL: &str = "proviso_rules_reloads_total";
pub const LIVE_FIGURES_SECONDS: &str = "proviso_live_figures_seconds";
pub const STORAGE_FAILURES_TOTAL: &str = "proviso_storage_failures_total";
pub const CLUSTER_APPLIED_EPOCH: &str = "proviso_cluster_applied_epoch";
pub const CLUSTER_APPLIED_SEQUENCE: &str = "proviso_cluster_applied_sequence";
pub const CLUSTER_CATCH_UP_SECONDS: &str = "proviso_cluster_catch_up_seconds";
pub const CLUSTER_RESENDS_DROPPED_TOTAL: &str = "proviso_cluster_resends_dropped_total";
pub const AUDIT_SCRUB_SECONDS: &str = "proviso_audit_scrub_seconds";
pub const AUDIT_HANDLES_SCRUBBED_TOTAL: &str = "proviso_audit_handles_scrubbed_total";
pub const ERASURES_PENDING: &str = "proviso_erasures_pending";

/// Buckets for the ingest latency histogram (seconds): 100 µs to 5 s.
pub const INGEST_DURATION_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Describes every series once, so `/metrics` carries HELP lines.
pub fn describe() {
    metrics::describe_counter!(EVENTS_ACCEPTED_TOTAL, "Events accepted by the privacy edge and made durable.");
    metrics::describe_counter!(EVENTS_REJECTED_TOTAL, "Event lines rejected by the privacy edge, by reason.");
    metrics::describe_histogram!(
        INGEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from receiving a batch to acknowledging it (edge, log fsync, state)."
    );
    metrics::describe_gauge!(LOG_SIZE_BYTES, metrics::Unit::Bytes, "Bytes in the durable event log.");
    metrics::describe_gauge!(LOG_RECORDS, "Records in the durable event log.");
    metrics::describe_gauge!(SUBJECTS, "Subjects known to proviso.");
    metrics::describe_gauge!(STATE_HEAP_BYTES, metrics::Unit::Bytes, "Approximate heap bytes of derived state.");
    metrics::describe_gauge!(
        ERASURES_PENDING,
        "Erasures applied whose events are still in the log, waiting for its compaction (within erasure_compaction_seconds)."
    );
    metrics::describe_counter!(GATE_DECISIONS_TOTAL, "Purpose gate decisions, by purpose and decision.");
    metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests, by route and status class.");
    metrics::describe_counter!(ABUSE_ACTIONS_TOTAL, "Abuse actions taken, by resulting status and whether shared.");
    metrics::describe_counter!(BANNED_EVENTS_TOTAL, "Events logged from subjects that were banned at the time.");
    metrics::describe_counter!(
        SUSPICIOUS_DOMAINS_TOTAL,
        "Link domains put on the derived suspicious_domains list (domain reputation)."
    );
    metrics::describe_gauge!(
        CLUSTER_APPLIED_EPOCH,
        "Cluster mode: the epoch of the last message of the cluster's log this node applied."
    );
    metrics::describe_gauge!(
        CLUSTER_APPLIED_SEQUENCE,
        "Cluster mode: the sequence, within its epoch, of the last message of the cluster's log this node applied."
    );
    metrics::describe_histogram!(
        CLUSTER_CATCH_UP_SECONDS,
        metrics::Unit::Seconds,
        "Cluster mode: how long a request waited for this node to apply the cluster's log as it stood when the request came."
    );
    metrics::describe_counter!(
        CLUSTER_RESENDS_DROPPED_TOTAL,
        "Cluster mode: messages of the cluster's log not applied because their idempotency key already was (a resend stored in a later epoch)."
    );
    metrics::describe_histogram!(
        AUDIT_SCRUB_SECONDS,
        metrics::Unit::Seconds,
        "Time to scrub erased people's handles from the audit log after a compaction, by way: in_place (the records naming them) or whole_log."
    );
    metrics::describe_counter!(
        AUDIT_HANDLES_SCRUBBED_TOTAL,
        "Erased people's handles replaced by digests in the audit log, by way: in_place or whole_log."
    );
    metrics::describe_counter!(RULES_RELOADS_TOTAL, "Abuse rules reload attempts, by outcome (loaded, refused).");
    metrics::describe_counter!(
        STORAGE_FAILURES_TOTAL,
        "Writes to the disk that failed (full or broken disk), by file: log, snapshot, compaction, audit, feed, vault."
    );
    metrics::describe_histogram!(
        LIVE_FIGURES_SECONDS,
        metrics::Unit::Seconds,
        "Time to compute one update of GET /v1/live (under the state read lock)."
    );
}

/// A write to the disk failed (the call site logs what and why).
pub struct StorageFailed {
    /// `log`, `snapshot`, `compaction`, `audit`, `feed` or `vault`.
    pub file: &'static str,
}

impl StorageFailed {
    pub fn emit(self) {
        counter!(STORAGE_FAILURES_TOTAL, "file" => self.file).increment(1);
    }
}

/// The audit log was scrubbed after a compaction.
pub struct AuditScrubbed {
    /// `in_place` or `whole_log`.
    pub way: &'static str,
    pub handles: usize,
    pub duration: Duration,
}

impl AuditScrubbed {
    pub fn emit(self) {
        histogram!(AUDIT_SCRUB_SECONDS, "way" => self.way).record(self.duration.as_secs_f64());
        counter!(AUDIT_HANDLES_SCRUBBED_TOTAL, "way" => self.way).increment(self.handles as u64);
    }
}

/// Cluster mode: this node applied the cluster's log up to a position.
pub struct ClusterApplied {
    pub epoch: u64,
    pub sequence: u64,
}

impl ClusterApplied {
    pub fn emit(self) {
        gauge!(CLUSTER_APPLIED_EPOCH).set(self.epoch as f64);
        gauge!(CLUSTER_APPLIED_SEQUENCE).set(self.sequence as f64);
    }
}

/// Cluster mode: a request waited this long for the node to catch up.
pub struct ClusterCaughtUp {
    pub waited: Duration,
}

impl ClusterCaughtUp {
    pub fn emit(self) {
        histogram!(CLUSTER_CATCH_UP_SECONDS).record(self.waited.as_secs_f64());
    }
}

/// Cluster mode: a message of the cluster's log was a resend of a keyed
/// batch already applied, and only its position was kept.
pub struct ClusterResendDropped;

impl ClusterResendDropped {
    pub fn emit(self) {
        counter!(CLUSTER_RESENDS_DROPPED_TOTAL).increment(1);
    }
}

/// One update of the dashboard's live figures was computed.
pub struct LiveFiguresComputed {
    pub duration: Duration,
}

impl LiveFiguresComputed {
    pub fn emit(self) {
        histogram!(LIVE_FIGURES_SECONDS).record(self.duration.as_secs_f64());
    }
}

/// An abuse action was taken (by a rule, a partner flag or a reviewer).
pub struct AbuseActed {
    pub status: &'static str,
    pub shared: bool,
}

impl AbuseActed {
    pub fn emit(self) {
        let shared = if self.shared { "true" } else { "false" };
        counter!(ABUSE_ACTIONS_TOTAL, "status" => self.status, "shared" => shared).increment(1);
    }
}

/// An event from a banned subject was logged (and flagged).
pub struct BannedEventLogged;

impl BannedEventLogged {
    pub fn emit(self) {
        counter!(BANNED_EVENTS_TOTAL).increment(1);
    }
}

/// Domain reputation put a link domain on the derived list.
pub struct DomainJudgedSuspicious;

impl DomainJudgedSuspicious {
    pub fn emit(self) {
        counter!(SUSPICIOUS_DOMAINS_TOTAL).increment(1);
    }
}

/// A rules reload was attempted.
pub struct RulesReloaded<'a> {
    pub source: &'a str,
    /// `None` when loaded; the error otherwise.
    pub error: Option<&'a str>,
}

impl RulesReloaded<'_> {
    pub fn emit(self) {
        match self.error {
            None => {
                counter!(RULES_RELOADS_TOTAL, "outcome" => "loaded").increment(1);
                tracing::info!(source = self.source, "Abuse rules loaded.");
            }
            Some(error) => {
                counter!(RULES_RELOADS_TOTAL, "outcome" => "refused").increment(1);
                tracing::warn!(source = self.source, %error, "Abuse rules refused; the previous rules keep running.");
            }
        }
    }
}

/// A batch of events was accepted and acknowledged.
pub struct EventsAccepted {
    pub count: u64,
    pub duration: Duration,
}

impl EventsAccepted {
    pub fn emit(self) {
        counter!(EVENTS_ACCEPTED_TOTAL).increment(self.count);
        histogram!(INGEST_DURATION_SECONDS).record(self.duration.as_secs_f64());
    }
}

/// Lines of one batch were rejected; `counts` is per reason.
pub struct EventsRejected<'a> {
    pub counts: &'a [(RejectReason, u64)],
}

impl EventsRejected<'_> {
    pub fn emit(self) {
        let mut total = 0;
        for (reason, count) in self.counts {
            counter!(EVENTS_REJECTED_TOTAL, "reason" => reason.as_str()).increment(*count);
            total += count;
        }
        if total > 0 {
            tracing::debug!(rejected = total, "Rejected event lines at the privacy edge.");
        }
    }
}

/// The log and state grew.
pub struct LogAppended {
    pub log_bytes: u64,
    pub log_records: u64,
    pub subjects: usize,
}

impl LogAppended {
    pub fn emit(self) {
        gauge!(LOG_SIZE_BYTES).set(self.log_bytes as f64);
        gauge!(LOG_RECORDS).set(self.log_records as f64);
        gauge!(SUBJECTS).set(self.subjects as f64);
    }
}

/// How many applied erasures wait for the log's compaction. Zero again
/// once the erased people's events have left the log.
pub struct ErasuresPending(pub u64);

impl ErasuresPending {
    pub fn emit(self) {
        gauge!(ERASURES_PENDING).set(self.0 as f64);
    }
}

/// A snapshot of derived state was written.
pub struct SnapshotWritten {
    pub bytes: u64,
    pub next_seq: u64,
    pub heap_bytes: usize,
}

impl SnapshotWritten {
    pub fn emit(self) {
        gauge!(STATE_HEAP_BYTES).set(self.heap_bytes as f64);
        tracing::info!(bytes = self.bytes, next_seq = self.next_seq, "Snapshot written.");
    }
}

/// The purpose gate decided.
pub struct GateDecided {
    pub purpose: Purpose,
    pub allowed: bool,
}

impl GateDecided {
    pub fn emit(self) {
        GateDecisionsCounted {
            purpose: self.purpose,
            allowed: u64::from(self.allowed),
            denied: u64::from(!self.allowed),
        }
        .emit();
    }
}

/// Many gate decisions for one purpose, counted once (per request, not
/// per subject).
pub struct GateDecisionsCounted {
    pub purpose: Purpose,
    pub allowed: u64,
    pub denied: u64,
}

impl GateDecisionsCounted {
    pub fn emit(self) {
        for (decision, count) in [("allowed", self.allowed), ("denied", self.denied)] {
            if count > 0 {
                counter!(GATE_DECISIONS_TOTAL, "purpose" => self.purpose.as_str(), "decision" => decision)
                    .increment(count);
            }
        }
    }
}

/// An HTTP request finished.
pub struct HttpRequestFinished {
    pub route: &'static str,
    pub status: u16,
}

impl HttpRequestFinished {
    pub fn emit(self) {
        let class = match self.status {
            200..=299 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        counter!(HTTP_REQUESTS_TOTAL, "route" => self.route, "status" => class).increment(1);
    }
}
