//! Putting abuse rules in force: validate, then log a `RulesLoaded` record.
//!
//! Owns: reading a rules file and its list files, refusing a broken one
//! (the rules in force keep running), logging the accepted text so replay
//! uses the same rules at the same position, and watching the file.
//! Never: applies rules that were not logged first.
//!
//! This lives in the pipeline, not beside the abuse processor: installing
//! compares with the rules in force (`state/`) and logs through the writer,
//! both above `processors/` in the import order (docs/architecture.md).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Pipeline, PipelineError, Prepared};
use crate::contract::{Control, ControlBody};
use crate::processors::abuse::rules::{RuleSet, RulesError};
use crate::processors::abuse::RulesSource;

#[derive(Debug, thiserror::Error)]
pub enum RulesLoadError {
    #[error("reading rules file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(transparent)]
    Invalid(#[from] RulesError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// What loading rules did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RulesLoaded {
    /// Rules in the file (enabled or not).
    pub rules: usize,
    /// False when the same rules were already in force (nothing was logged).
    pub changed: bool,
}

impl Pipeline {
    /// Validates rules `text` (list files resolved against `base_dir`) and,
    /// when they differ from the rules in force, logs them; they apply to
    /// every record after that one.
    pub fn install_rules(&self, text: &str, base_dir: &Path) -> Result<RulesLoaded, RulesLoadError> {
        let lists = RefCell::new(Vec::new());
        let rules = RuleSet::parse_with(text, &|relative: &str| {
            let content = std::fs::read_to_string(base_dir.join(relative))?;
            lists.borrow_mut().push((relative.to_string(), content.clone()));
            Ok(content)
        })?;
        let source = RulesSource { text: text.to_string(), lists: lists.into_inner() };
        let count = rules.rules.len();
        if self.state().abuse.rules_source() == Some(&source) {
            return Ok(RulesLoaded { rules: count, changed: false });
        }
        let control = Control {
            ts_ms: self.clock.now_ms(),
            body: ControlBody::RulesLoaded { text: source.text, lists: source.lists },
        };
        crate::failpoint::reach("rules.before_commit");
        self.commit_blocking(Prepared::from_control(control))?;
        crate::failpoint::reach("rules.after_commit");
        Ok(RulesLoaded { rules: count, changed: true })
    }

    /// Reads and installs a rules file.
    pub fn install_rules_file(&self, path: &Path) -> Result<RulesLoaded, RulesLoadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RulesLoadError::Read { path: path.display().to_string(), source })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.install_rules(&text, &base_dir)
    }
}

/// Polls `path` (and nothing else) every `interval`; on a change, installs
/// it, or reports why not and keeps the rules in force. Stops when the
/// pipeline is dropped.
pub fn watch_rules(pipeline: &Arc<Pipeline>, path: PathBuf, interval: Duration) {
    let weak = Arc::downgrade(pipeline);
    let stamp =
        |path: &Path| std::fs::metadata(path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
    let mut last = stamp(&path);
    let spawned = std::thread::Builder::new().name("proviso-rules-watch".into()).spawn(move || loop {
        std::thread::sleep(interval);
        let Some(pipeline) = weak.upgrade() else { return };
        let now = stamp(&path);
        if now == last || now.is_none() {
            continue;
        }
        last = now;
        let source = path.display().to_string();
        match pipeline.install_rules_file(&path) {
            Ok(outcome) if outcome.changed => crate::telemetry::RulesReloaded { source: &source, error: None }.emit(),
            Ok(_) => {}
            Err(error) => {
                let error = error.to_string();
                crate::telemetry::RulesReloaded { source: &source, error: Some(&error) }.emit();
            }
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "Could not start the rules file watcher; reload with POST /v1/abuse/rules.");
    }
}
