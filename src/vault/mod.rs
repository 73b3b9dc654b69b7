//! Per-person secrets: crypto-shredding.
//!
//! Owns: one random 32-byte secret per person, minted the first time an
//! identifier that leaves the core is needed for them (or a backup is
//! taken), kept in `<data>/vault/secrets.bin`; the erasure ledger
//! (`erasures.bin`), a digest of each destroyed secret; the list of what
//! the audit log's scrub owes (`scrub-owed.bin`, `scrub_owed.rs`). Every identifier that leaves the core (the
//! audit log's `r_` handles, a partner's `h_` handles) is derived from it.
//! Erasure destroys the secret: a tombstone at once, the bytes themselves at
//! the next compaction. From then on nobody, the operator with the
//! pseudonym key included, can tie those identifiers to the number again,
//! and a number that registers after erasure gets a new secret: a new
//! person with an empty report.
//! In cluster mode every node must hold the same secret for a person, so a
//! node does not mint one at random: the pipeline appends a nonce to the
//! cluster's log (`SecretMinted`) and every node's vault derives the secret
//! from it and the cluster's vault key ([`Vault::install`]); the key comes
//! from the pseudonym key, so NATS never holds what derives a secret.
//! Never: derives an outgoing identifier from the pseudonym alone, hands
//! out a secret it has destroyed, or (in cluster mode) mints one of its own.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::contract::{prefixed_hex, Pseudonym};
use crate::edge::PseudonymKey;

mod scrub_owed;
mod table;
pub use scrub_owed::{ScrubOwed, SCRUB_OWED_FILE};
use table::Secrets;

/// Sub-directory of the data dir holding the vault.
pub const VAULT_DIR: &str = "vault";
const SECRETS_FILE: &str = "secrets.bin";
/// The erasure ledger: one [`ErasureMark`] per destroyed secret, appended
/// before the secret's tombstone. Kept across compactions and copied into
/// every backup; `proviso restore` erases from a restored backup everyone
/// whose secret it still holds and a ledger marks.
pub const LEDGER_FILE: &str = "erasures.bin";
/// Bytes of one ledger mark.
pub const MARK: usize = 16;
/// One record: pseudonym (16 bytes), then the secret (32 bytes; all zero:
/// a tombstone, the secret is destroyed).
const RECORD: usize = 16 + 32;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("no randomness for a new secret: {0}")]
    Random(String),
    /// Cluster mode: a secret the cluster's log did not mint (the person was
    /// erased while a disclosure about them was being made).
    #[error("a person's secret was not minted by the cluster (erased meanwhile?); nothing was disclosed")]
    NotMinted,
}

/// A person's secret. Not `Debug`, `Display` or serialisable: only the
/// identifiers derived from it leave this module.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SubjectSecret([u8; 32]);

impl SubjectSecret {
    /// The handle proviso's own records (audit log, feeds ledger) use for
    /// the person: `r_` + 32 hex.
    pub fn record_handle(&self) -> String {
        prefixed_hex("r_", &self.record_handle_bytes())
    }

    /// The person's erasure mark: a digest of the secret. Once the secret is
    /// destroyed the mark names nobody (nothing derives it from a number
    /// or a pseudonym); only a copy made before the erasure, still holding
    /// the secret, can tell whom it marks.
    pub fn erasure_mark(&self) -> ErasureMark {
        let hash = blake3::keyed_hash(&blake3::derive_key("proviso 2026 erasure mark v1", b""), &self.0);
        let mut bytes = [0u8; MARK];
        bytes.copy_from_slice(&hash.as_bytes()[..MARK]);
        ErasureMark(bytes)
    }

    fn record_handle_bytes(&self) -> [u8; 16] {
        let hash = blake3::keyed_hash(&blake3::derive_key("proviso 2026 record handle v2", b""), &self.0);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash.as_bytes()[..16]);
        bytes
    }

    /// The handle one partner sees for the person: `h_` + 32 hex, keyed by
    /// that partner's key, so no two partners share an identifier.
    pub fn partner_handle(&self, partner_key: &PseudonymKey) -> String {
        let hash = blake3::keyed_hash(partner_key.bytes(), &self.0);
        prefixed_hex("h_", &hash.as_bytes()[..16])
    }
}

/// One entry of the erasure ledger (see [`SubjectSecret::erasure_mark`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErasureMark([u8; MARK]);

/// Reads the erasure ledger at `path` (a data dir, a backup, or the ledger
/// file itself); a missing file is an empty ledger, a torn last mark is
/// ignored.
pub fn read_ledger(path: &Path) -> Result<std::collections::HashSet<ErasureMark>, VaultError> {
    let file = if path.is_dir() { path.join(VAULT_DIR).join(LEDGER_FILE) } else { path.to_path_buf() };
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && path.is_dir() => Vec::new(),
        Err(source) => return Err(VaultError::Io { path: file.display().to_string(), source }),
    };
    Ok(bytes
        .chunks_exact(MARK)
        .map(|chunk| {
            let mut mark = [0u8; MARK];
            mark.copy_from_slice(chunk);
            ErasureMark(mark)
        })
        .collect())
}

struct Inner {
    /// By pseudonym, and by `r_` handle bytes (for re-checking a stored
    /// disclosure against the gate when it is read again).
    secrets: Secrets,
    file: File,
    /// Set when a failed append could not be cut back off the file: a
    /// later append would land out of step with the fixed-size records, so
    /// every later one is refused until restart.
    broken: bool,
    /// The erasure ledger, opened for appending.
    ledger: File,
}

/// The per-person secrets of one data dir.
pub struct Vault {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Cluster mode: the key secrets are derived with from the nonces the
    /// cluster's log mints ([`Vault::install`]); this vault then mints none
    /// of its own.
    cluster_key: Option<[u8; 32]>,
    /// Held from reading the list of what the audit scrub owes to settling
    /// it: one scrub at a time, so none settles keys another read later.
    scrubbing: Mutex<()>,
}

/// What the audit log's next scrub owes, held until it is done
/// ([`Vault::scrub_done`]): no other scrub reads the list meanwhile.
pub struct OwedScrub<'a> {
    pub owed: ScrubOwed,
    _turn: std::sync::MutexGuard<'a, ()>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault { .. }")
    }
}

impl Vault {
    /// Opens (or creates) the vault of `data_dir`. A torn last record (a
    /// crash mid-append) is cut: its secret was never used, because a
    /// secret is fsynced before any identifier derived from it is written.
    pub fn open(data_dir: &Path) -> Result<Vault, VaultError> {
        let dir = data_dir.join(VAULT_DIR);
        let path = dir.join(SECRETS_FILE);
        let io = |source| VaultError::Io { path: path.display().to_string(), source };
        crate::log::fsmode::create_private_dir(&dir).map_err(io)?;
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut file) => {
                file.read_to_end(&mut bytes).map_err(io)?;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(error)),
        }
        let whole = bytes.len() - bytes.len() % RECORD;
        let mut secrets = Secrets::default();
        for record in bytes[..whole].chunks_exact(RECORD) {
            let (pseudonym, secret) = parse_record(record);
            match secret {
                Some(secret) => secrets.insert(pseudonym, secret),
                None => secrets.remove(&pseudonym),
            };
        }
        secrets.shrink_to_fit();
        let file = crate::log::fsmode::private_file().create(true).append(true).open(&path).map_err(io)?;
        if whole != bytes.len() {
            file.set_len(whole as u64).map_err(io)?;
        }
        let ledger_path = dir.join(LEDGER_FILE);
        let ledger_io = |source| VaultError::Io { path: ledger_path.display().to_string(), source };
        let ledger =
            crate::log::fsmode::private_file().create(true).append(true).open(&ledger_path).map_err(ledger_io)?;
        let ledger_len = ledger.metadata().map_err(ledger_io)?.len();
        if ledger_len % MARK as u64 != 0 {
            // A torn mark: its tombstone was never written, so the next
            // start forgets the person again and marks them whole.
            ledger.set_len(ledger_len - ledger_len % MARK as u64).map_err(ledger_io)?;
        }
        let owed_path = dir.join(SCRUB_OWED_FILE);
        scrub_owed::cut_torn(&owed_path)
            .map_err(|source| VaultError::Io { path: owed_path.display().to_string(), source })?;
        Ok(Vault {
            path,
            inner: Mutex::new(Inner { secrets, file, broken: false, ledger }),
            cluster_key: None,
            scrubbing: Mutex::new(()),
        })
    }

    /// The vault of a cluster's node: secrets come from the cluster's log,
    /// derived with a key that only holders of the pseudonym key have.
    pub fn for_cluster(mut self, pseudonym_key: &PseudonymKey) -> Vault {
        self.cluster_key = Some(blake3::derive_key("proviso 2026 cluster vault v1", pseudonym_key.bytes()));
        self
    }

    /// Whether secrets come from the cluster's log.
    pub fn is_cluster(&self) -> bool {
        self.cluster_key.is_some()
    }

    /// The people of `pseudonyms` with no secret yet, each once.
    pub fn missing(&self, pseudonyms: &[Pseudonym]) -> Vec<Pseudonym> {
        let inner = self.lock();
        let mut seen = std::collections::HashSet::new();
        pseudonyms.iter().filter(|p| !inner.secrets.contains(p) && seen.insert(**p)).copied().collect()
    }

    /// Cluster mode: stores the secrets the cluster's log minted, derived
    /// from each nonce (and fsyncs, once for all); a person who holds a
    /// secret keeps it (the first nonce applied wins). Returns how many were
    /// stored.
    pub fn install(&self, minted: &[(Pseudonym, [u8; 32])]) -> Result<usize, VaultError> {
        let Some(key) = &self.cluster_key else { return Ok(0) };
        if minted.is_empty() {
            return Ok(0);
        }
        let mut inner = self.lock();
        let mut bytes = Vec::new();
        for (pseudonym, nonce) in minted {
            if inner.secrets.contains(pseudonym) {
                continue;
            }
            let secret = derive(key, pseudonym, nonce);
            inner.secrets.insert(*pseudonym, secret);
            bytes.extend_from_slice(pseudonym.as_bytes());
            bytes.extend_from_slice(&secret.0);
        }
        if bytes.is_empty() {
            return Ok(0);
        }
        if let Err(error) = self.append(&mut inner, &bytes) {
            for record in bytes.chunks_exact(RECORD) {
                inner.secrets.remove(&parse_record(record).0);
            }
            return Err(self.io()(error));
        }
        Ok(bytes.len() / RECORD)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn io(&self) -> impl Fn(std::io::Error) -> VaultError + '_ {
        move |source| VaultError::Io { path: self.path.display().to_string(), source }
    }

    /// The secret of each person, minting (and fsyncing, once for all) the
    /// ones not made yet. In cluster mode nothing is minted here: a person
    /// the cluster's log has not minted a secret for is
    /// [`VaultError::NotMinted`].
    pub fn secrets_for(&self, pseudonyms: &[Pseudonym]) -> Result<Vec<SubjectSecret>, VaultError> {
        let mut inner = self.lock();
        let mut minted = Vec::new();
        let mut out = Vec::with_capacity(pseudonyms.len());
        for pseudonym in pseudonyms {
            let secret = match inner.secrets.get(pseudonym) {
                Some(secret) => secret,
                None if self.cluster_key.is_some() => return Err(VaultError::NotMinted),
                None => {
                    let secret = random_secret()?;
                    inner.secrets.insert(*pseudonym, secret);
                    minted.extend_from_slice(pseudonym.as_bytes());
                    minted.extend_from_slice(&secret.0);
                    secret
                }
            };
            out.push(secret);
        }
        if !minted.is_empty() {
            let written = self.append(&mut inner, &minted);
            if let Err(error) = written {
                // Not durable: forget them, so nothing derived from them leaves.
                for record in minted.chunks_exact(RECORD) {
                    inner.secrets.remove(&parse_record(record).0);
                }
                return Err(self.io()(error));
            }
        }
        Ok(out)
    }

    /// The `r_` handles of people, minting their secrets when needed.
    pub fn record_handles(&self, pseudonyms: &[Pseudonym]) -> Result<Vec<String>, VaultError> {
        Ok(self.secrets_for(pseudonyms)?.iter().map(SubjectSecret::record_handle).collect())
    }

    /// How many live secrets the vault holds.
    pub fn len(&self) -> usize {
        self.lock().secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cluster mode: the `r_` handle of a person, from the secret the vault
    /// holds or, failing that, the one `nonce` (minted by the cluster's log,
    /// not yet stored) derives; `None` when neither gives one.
    pub fn record_handle_or_minted(&self, pseudonym: &Pseudonym, nonce: Option<&[u8; 32]>) -> Option<String> {
        if let Some(secret) = self.existing(pseudonym) {
            return Some(secret.record_handle());
        }
        let key = self.cluster_key.as_ref()?;
        Some(derive(key, pseudonym, nonce?).record_handle())
    }

    /// Cluster mode: the `r_` handle the secret `nonce` derives gives a
    /// person (whatever the vault holds for them now).
    pub fn minted_handle(&self, pseudonym: &Pseudonym, nonce: &[u8; 32]) -> Option<String> {
        Some(derive(self.cluster_key.as_ref()?, pseudonym, nonce).record_handle())
    }

    /// The person's secret if one was made (nothing was ever disclosed
    /// about a person without one).
    pub fn existing(&self, pseudonym: &Pseudonym) -> Option<SubjectSecret> {
        self.lock().secrets.get(pseudonym)
    }

    /// Destroys the secrets of erased people: a tombstone is fsynced before
    /// this returns; the bytes leave the file at the next [`Vault::compact`].
    pub fn forget(&self, pseudonyms: &[Pseudonym]) -> Result<(), VaultError> {
        let mut inner = self.lock();
        let mut tombstones = Vec::new();
        let mut marks = Vec::new();
        let mut owed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for pseudonym in pseudonyms {
            if !seen.insert(*pseudonym) {
                continue;
            }
            if let Some(secret) = inner.secrets.get(pseudonym) {
                owed.extend_from_slice(&crate::contract::hash_prefix::<{ scrub_owed::KEY }>(&secret.record_handle()));
                marks.extend_from_slice(&secret.erasure_mark().0);
                tombstones.extend_from_slice(pseudonym.as_bytes());
                tombstones.extend_from_slice(&[0; 32]);
            }
        }
        if tombstones.is_empty() {
            return Ok(());
        }
        // The audit scrub's keys and the marks first: a crash before the
        // tombstones leaves the secrets live, and the next start forgets
        // (lists and marks) them again.
        self.on_owed_list(|path| scrub_owed::append(path, &owed))?;
        let ledger_io = |source| VaultError::Io { path: self.ledger_path().display().to_string(), source };
        inner.ledger.write_all(&marks).and_then(|()| inner.ledger.sync_data()).map_err(ledger_io)?;
        for pseudonym in pseudonyms {
            inner.secrets.remove(pseudonym);
        }
        self.append(&mut inner, &tombstones).map_err(self.io())
    }

    /// Appends whole records durably. On failure (a full disk may take part
    /// of them) the file is cut back to where it was, so records stay in
    /// step: one part-written record followed by a later append would shift
    /// every record after it and read back as other people's secrets.
    fn append(&self, inner: &mut Inner, bytes: &[u8]) -> std::io::Result<()> {
        if inner.broken {
            return Err(std::io::Error::other(
                "an earlier append failed and could not be cut off the file; restart proviso",
            ));
        }
        let before = inner.file.metadata()?.len();
        let written =
            crate::failpoint::write_all("vault.write", &mut inner.file, bytes).and_then(|()| inner.file.sync_data());
        if written.is_err() {
            crate::telemetry::StorageFailed { file: "vault" }.emit();
            if let Err(cut) = inner.file.set_len(before).and_then(|()| inner.file.sync_all()) {
                tracing::error!(path = %self.path.display(), %cut, "Could not cut a failed vault append; appends refused until restart.");
                inner.broken = true;
            }
        }
        written
    }

    /// Destroys the secrets of everyone `keep` says no longer exists (at
    /// start, after replaying erasures a crash kept from the vault).
    pub fn forget_unless(&self, keep: impl Fn(&Pseudonym) -> bool) -> Result<usize, VaultError> {
        let gone: Vec<Pseudonym> = self.lock().secrets.iter().map(|(p, _)| *p).filter(|p| !keep(p)).collect();
        self.forget(&gone)?;
        Ok(gone.len())
    }

    /// Rewrites the file with the live secrets only (no tombstone, no
    /// destroyed secret): written aside, fsynced, renamed over, and the
    /// directory fsynced. Runs with the log's compaction.
    pub fn compact(&self) -> Result<(), VaultError> {
        let mut inner = self.lock();
        let tmp = self.path.with_extension("bin.tmp");
        let io = |source| VaultError::Io { path: tmp.display().to_string(), source };
        let mut bytes = Vec::with_capacity(inner.secrets.len() * RECORD);
        for (pseudonym, secret) in inner.secrets.iter() {
            bytes.extend_from_slice(pseudonym.as_bytes());
            bytes.extend_from_slice(&secret.0);
        }
        let mut file =
            crate::log::fsmode::private_file().write(true).create(true).truncate(true).open(&tmp).map_err(io)?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(self.io())?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(self.io())?;
        }
        inner.file = crate::log::fsmode::private_file().append(true).open(&self.path).map_err(self.io())?;
        Ok(())
    }

    fn ledger_path(&self) -> PathBuf {
        self.path.with_file_name(LEDGER_FILE)
    }

    /// Runs `op` on the list of what the audit scrub owes; an error names
    /// the file.
    fn on_owed_list<T>(&self, op: impl FnOnce(&Path) -> std::io::Result<T>) -> Result<T, VaultError> {
        let path = self.path.with_file_name(SCRUB_OWED_FILE);
        op(&path).map_err(|source| VaultError::Io { path: path.display().to_string(), source })
    }

    /// What the audit log's next scrub must cover: the index keys of the
    /// handles of every secret destroyed since the last one (and, on a
    /// cluster's node, of every handle written while no live secret stood
    /// for it: [`Vault::list_unless_live`]), or everything when that list
    /// is not known to be whole (a dir from before the list, a restored
    /// backup). Read under the vault's lock, so no erasure is half listed;
    /// the turn it returns keeps any other scrub waiting until
    /// [`Vault::scrub_done`] or its drop.
    pub fn scrub_owed(&self) -> Result<OwedScrub<'_>, VaultError> {
        let turn = self.scrubbing.lock().unwrap_or_else(|p| p.into_inner());
        let _inner = self.lock();
        let owed = self.on_owed_list(scrub_owed::read)?;
        Ok(OwedScrub { owed, _turn: turn })
    }

    /// After a scrub that covered `owed`: what it listed is done; the keys
    /// listed since stay owed.
    pub fn scrub_done(&self, owed: OwedScrub<'_>) -> Result<(), VaultError> {
        let _inner = self.lock();
        self.on_owed_list(|path| scrub_owed::settle(path, owed.owed.read()))
    }

    /// Starts a whole, empty list of what the audit scrub owes where there
    /// is none, for an audit log that holds no record yet (the caller
    /// knows): every handle from now on comes from a secret here, and its
    /// erasure lists it. Returns whether it did.
    pub fn start_scrub_list(&self) -> Result<bool, VaultError> {
        let _inner = self.lock();
        self.on_owed_list(scrub_owed::start_whole)
    }

    /// Adds marks read from other ledgers (a restore keeps the live dir's
    /// erasures, so a later restore from this dir honours them too); marks
    /// already present are skipped.
    pub fn record_marks(&self, marks: &std::collections::HashSet<ErasureMark>) -> Result<usize, VaultError> {
        let inner = self.lock();
        let known = read_ledger(&self.ledger_path())?;
        let mut bytes = Vec::new();
        let mut added = 0;
        for mark in marks.difference(&known) {
            bytes.extend_from_slice(&mark.0);
            added += 1;
        }
        if added > 0 {
            let io = |source| VaultError::Io { path: self.ledger_path().display().to_string(), source };
            (&inner.ledger).write_all(&bytes).and_then(|()| inner.ledger.sync_data()).map_err(io)?;
        }
        Ok(added)
    }

    /// The people whose live secret one of `marks` marks: erased elsewhere
    /// (in the data dir this vault was copied from) after the copy was made.
    pub fn marked(&self, marks: &std::collections::HashSet<ErasureMark>) -> Vec<Pseudonym> {
        let inner = self.lock();
        let mut found: Vec<Pseudonym> = inner
            .secrets
            .iter()
            .filter(|(_, secret)| marks.contains(&secret.erasure_mark()))
            .map(|(pseudonym, _)| *pseudonym)
            .collect();
        found.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        found
    }

    /// Copies the vault and its ledger as they stand into `dest_data_dir`
    /// (for a backup): under the vault's lock, so no secret is half written.
    pub fn copy_to(&self, dest_data_dir: &Path) -> Result<(), VaultError> {
        let _inner = self.lock();
        let dir = dest_data_dir.join(VAULT_DIR);
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| VaultError::Io { path, source }
        };
        crate::log::fsmode::create_private_dir(&dir).map_err(io(&dir))?;
        for source in [self.path.clone(), self.ledger_path()] {
            let Some(name) = source.file_name() else { continue };
            let target = dir.join(name);
            let len = std::fs::metadata(&source).map_err(io(&source))?.len();
            crate::log::copy_prefix(&source, &target, len).map_err(io(&target))?;
        }
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io(&dir))
    }

    /// The person an `r_` handle (from the audit log or the feeds ledger)
    /// stands for, while their secret lives; `None` once they are erased.
    pub fn owner_of_record_handle(&self, handle: &str) -> Option<Pseudonym> {
        self.lock().secrets.owner(&handle_bytes(handle)?)
    }

    /// Cluster mode, before the audit log records a disclosure: lists for
    /// the audit scrub the key of each of `handles` that no live secret
    /// here stands for (a secret minted through the cluster's log for
    /// someone erased in the same group is never installed, so no erasure
    /// would list it later). Returns how many it listed.
    pub fn list_unless_live(&self, handles: &[String]) -> Result<usize, VaultError> {
        let inner = self.lock();
        let mut owed = Vec::new();
        for handle in handles {
            if handle_bytes(handle).and_then(|bytes| inner.secrets.owner(&bytes)).is_none() {
                owed.extend_from_slice(&crate::contract::hash_prefix::<{ scrub_owed::KEY }>(handle));
            }
        }
        self.on_owed_list(|path| scrub_owed::append(path, &owed))?;
        Ok(owed.len() / scrub_owed::KEY)
    }

    /// The `r_` handles of every live secret (who may still be named).
    pub fn live_record_handles(&self) -> std::collections::HashSet<String> {
        self.lock().secrets.iter().map(|(_, secret)| secret.record_handle()).collect()
    }
}

/// The bytes of an `r_` handle.
fn handle_bytes(handle: &str) -> Option<[u8; 16]> {
    let hex = handle.strip_prefix("r_")?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(bytes)
}

fn parse_record(record: &[u8]) -> (Pseudonym, Option<SubjectSecret>) {
    let mut pseudonym = [0u8; 16];
    pseudonym.copy_from_slice(&record[..16]);
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&record[16..RECORD]);
    let secret = (secret != [0; 32]).then_some(SubjectSecret(secret));
    (Pseudonym::from_stored(pseudonym), secret)
}

/// Cluster mode: the secret a nonce of the cluster's log gives a person.
fn derive(key: &[u8; 32], pseudonym: &Pseudonym, nonce: &[u8; 32]) -> SubjectSecret {
    let mut input = [0u8; 48];
    input[..16].copy_from_slice(pseudonym.as_bytes());
    input[16..].copy_from_slice(nonce);
    let mut secret: [u8; 32] = blake3::keyed_hash(key, &input).into();
    if secret == [0; 32] {
        // All zeros means a tombstone on disk.
        secret[0] = 1;
    }
    SubjectSecret(secret)
}

fn random_secret() -> Result<SubjectSecret, VaultError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| VaultError::Random(error.to_string()))?;
    if secret == [0; 32] {
        // All zeros means a tombstone on disk; 2^-256, but never ambiguous.
        secret[0] = 1;
    }
    Ok(SubjectSecret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(seed: u8) -> Pseudonym {
        Pseudonym::from_stored([seed; 16])
    }

    /// Secrets survive a reopen; a forgotten secret is gone for good, the
    /// same pseudonym later gets a different one, and compaction leaves no
    /// byte of the destroyed secret or the erased pseudonym in the file.
    #[test]
    fn erasure_destroys_the_secret_and_a_new_life_gets_a_new_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = Vault::open(dir.path()).expect("open");
        let first = vault.record_handles(&[person(1), person(2)]).expect("mint");
        assert_ne!(first[0], first[1]);
        assert_eq!(vault.record_handles(&[person(1)]).expect("again"), vec![first[0].clone()], "stable");
        let old_secret = vault.existing(&person(1)).expect("made").0;
        assert_eq!(vault.owner_of_record_handle(&first[0]), Some(person(1)), "a handle names its person");
        vault.forget(&[person(1)]).expect("forget");
        assert!(vault.existing(&person(1)).is_none());
        assert_eq!(vault.owner_of_record_handle(&first[0]), None, "and nobody once they are erased");
        drop(vault);
        let vault = Vault::open(dir.path()).expect("reopen");
        assert!(vault.existing(&person(1)).is_none(), "the tombstone survives a reopen");
        assert_eq!(vault.owner_of_record_handle(&first[1]), Some(person(2)), "rebuilt at open");
        assert_eq!(vault.owner_of_record_handle(&first[0]), None);
        assert_eq!(vault.record_handles(&[person(2)]).expect("kept"), vec![first[1].clone()]);
        let second = vault.record_handles(&[person(1)]).expect("new life");
        assert_ne!(second[0], first[0], "a new life is a new person");
        vault.forget(&[person(1)]).expect("forget again");
        vault.compact().expect("compact");
        let bytes = std::fs::read(dir.path().join(VAULT_DIR).join(SECRETS_FILE)).expect("read");
        assert_eq!(bytes.len(), RECORD, "only person 2 remains");
        assert!(!bytes.windows(32).any(|w| w == old_secret), "the destroyed secret is gone");
        assert!(!bytes.windows(16).any(|w| w == person(1).as_bytes()), "so is the erased pseudonym");
        let partner = PseudonymKey::from_bytes([9; 32]);
        let other = PseudonymKey::from_bytes([8; 32]);
        let secret = vault.existing(&person(2)).expect("secret");
        assert_ne!(secret.partner_handle(&partner), secret.partner_handle(&other), "per partner");
    }

    /// A new vault's list of what the audit scrub owes starts whole; each
    /// erasure lists its handle's index key (the audit index's key, 4 bytes
    /// of the handle's hash) before the secret goes; a scrub clears what it
    /// covered; a vault whose dir had secrets before the list existed (or
    /// a restored one, which has none) owes a whole scrub.
    #[test]
    fn erasures_list_the_keys_the_audit_scrub_owes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = Vault::open(dir.path()).expect("open");
        assert!(vault.start_scrub_list().expect("start"));
        assert!(!vault.start_scrub_list().expect("once"), "an existing list is kept");
        assert_eq!(vault.scrub_owed().expect("read").owed, ScrubOwed::Keys { keys: vec![], read: 1 });
        let handles = vault.record_handles(&[person(1), person(2), person(3)]).expect("mint");
        vault.forget(&[person(1), person(3), person(1)]).expect("forget");
        let key = |handle: &String| crate::contract::hash_prefix::<4>(handle);
        let owed = vault.scrub_owed().expect("read");
        assert_eq!(owed.owed, ScrubOwed::Keys { keys: vec![key(&handles[0]), key(&handles[2])], read: 9 });
        vault.forget(&[person(2)]).expect("forget during the scrub");
        vault.scrub_done(owed).expect("done");
        drop(vault);
        let vault = Vault::open(dir.path()).expect("reopen");
        assert_eq!(vault.scrub_owed().expect("read").owed, ScrubOwed::Keys { keys: vec![key(&handles[1])], read: 5 });
        // A handle about to be written with no live secret behind it (a
        // cluster's secret minted and erased in one group) is listed; a
        // live one is not.
        let live = vault.record_handles(&[person(4)]).expect("mint");
        let never_installed = format!("r_{:032x}", 77);
        assert_eq!(vault.list_unless_live(&[live[0].clone(), never_installed.clone()]).expect("list"), 1);
        assert_eq!(
            vault.scrub_owed().expect("read").owed,
            ScrubOwed::Keys { keys: vec![key(&handles[1]), key(&never_installed)], read: 9 }
        );
        // A dir from before the list: the next scrub covers everything.
        std::fs::remove_file(dir.path().join(VAULT_DIR).join(SCRUB_OWED_FILE)).expect("remove");
        let vault = Vault::open(dir.path()).expect("reopen");
        assert_eq!(vault.scrub_owed().expect("read").owed, ScrubOwed::Everything { read: 1 });
    }

    /// Two scrubs at once: the second reads the list only once the first
    /// settled it, so a key listed meanwhile is not settled unscrubbed.
    #[test]
    fn one_scrub_at_a_time_reads_and_settles_the_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = std::sync::Arc::new(Vault::open(dir.path()).expect("open"));
        vault.start_scrub_list().expect("start");
        vault.record_handles(&[person(1), person(2)]).expect("mint");
        vault.forget(&[person(1)]).expect("forget");
        let first = vault.scrub_owed().expect("read");
        let second = {
            let vault = std::sync::Arc::clone(&vault);
            std::thread::spawn(move || vault.scrub_owed().map(|owed| owed.owed.read()).expect("read"))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!second.is_finished(), "the second scrub waits its turn");
        vault.forget(&[person(2)]).expect("forget meanwhile");
        vault.scrub_done(first).expect("done");
        assert_eq!(second.join().expect("join"), 5, "it reads the list the first settled: person 2's key");
    }

    /// Forgetting marks the ledger with a digest of the destroyed secret
    /// (once, whatever the repeats), which a copy taken before the erasure
    /// matches to its person and nothing else does.
    #[test]
    fn an_erasure_leaves_a_mark_only_an_earlier_copy_can_read() {
        let live = tempfile::tempdir().expect("tempdir");
        let copy = tempfile::tempdir().expect("tempdir");
        let vault = Vault::open(live.path()).expect("open");
        vault.record_handles(&[person(1), person(2)]).expect("mint");
        vault.copy_to(copy.path()).expect("copy");
        vault.forget(&[person(1), person(1)]).expect("forget");
        vault.forget(&[person(1)]).expect("again: nothing left to forget");
        let marks = read_ledger(live.path()).expect("ledger");
        assert_eq!(marks.len(), 1);
        let ledger = std::fs::read(live.path().join(VAULT_DIR).join(LEDGER_FILE)).expect("read");
        assert_eq!(ledger.len(), MARK, "one mark");
        assert!(!ledger.windows(16).any(|w| w == person(1).as_bytes()), "the mark is not the pseudonym");
        assert!(vault.marked(&marks).is_empty(), "the live vault no longer knows whom it marks");
        let earlier = Vault::open(copy.path()).expect("open copy");
        assert_eq!(earlier.marked(&marks), vec![person(1)]);
        assert_eq!(earlier.record_marks(&marks).expect("record"), 1);
        assert_eq!(earlier.record_marks(&marks).expect("record again"), 0, "kept once");
    }

    /// A torn last record is cut on open.
    #[test]
    fn a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = Vault::open(dir.path()).expect("open");
        let handle = vault.record_handles(&[person(3)]).expect("mint");
        drop(vault);
        let path = dir.path().join(VAULT_DIR).join(SECRETS_FILE);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&[7; 20]).expect("torn");
        let vault = Vault::open(dir.path()).expect("reopen");
        assert_eq!(vault.record_handles(&[person(3)]).expect("same"), handle);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), RECORD as u64);
    }
}
