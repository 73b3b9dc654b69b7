//! Partition leases (`cluster::leases`) against a real nats-server 2.15: no
//! partition is ever held by two nodes at once, every partition is held once
//! the live nodes have run a round, and partitions move when a node dies
//! (after the lease time), stops cleanly (at once) or joins (its share).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::nats::Nats;
use common::Server;
use proviso::cluster::leases::{LeaseView, Leases};

const PARTITIONS: u16 = 16;
const LEASE: Duration = Duration::from_secs(2);

/// The partitions each view holds at one instant: none held twice.
fn assert_disjoint(views: &[(&str, &LeaseView)]) -> Vec<BTreeSet<u16>> {
    let now = Instant::now();
    let sets: Vec<BTreeSet<u16>> = views.iter().map(|(_, view)| view.held_at(now).into_iter().collect()).collect();
    for (i, a) in sets.iter().enumerate() {
        for (j, b) in sets.iter().enumerate().skip(i + 1) {
            let both: Vec<_> = a.intersection(b).collect();
            assert!(both.is_empty(), "{} and {} both hold {both:?}", views[i].0, views[j].0);
        }
    }
    sets
}

fn union(sets: &[BTreeSet<u16>]) -> BTreeSet<u16> {
    sets.iter().flatten().copied().collect()
}

/// Three nodes take every partition, their share each; one dies (stops
/// running rounds without releasing: its own view of what it holds lapses
/// by itself) and the others take its partitions once its leases expire;
/// a fourth joins and gets its share from the others; one stops cleanly
/// and the others take its partitions at their next round. After every
/// single round, no partition is held by two nodes at that instant, the
/// dead node's own belief included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_is_never_held_twice_and_moves_when_a_node_dies_joins_or_stops() {
    let temp = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(temp.path());
    let jetstream = proviso::cluster::connect(&nats.url).await.expect("connect");
    let open = |name: &'static str| {
        let jetstream = jetstream.clone();
        async move { Leases::open(&jetstream, name, PARTITIONS, LEASE).await.expect("open leases") }
    };
    let (mut a, mut b, mut c) = (open("a").await, open("b").await, open("c").await);
    assert_eq!(a.lease(), LEASE);
    let (va, vb, vc) = (a.view(), b.view(), c.view());
    for _ in 0..3 {
        for leases in [&mut a, &mut b, &mut c] {
            leases.round().await.expect("round");
            assert_disjoint(&[("a", &va), ("b", &vb), ("c", &vc)]);
        }
    }
    let sets = assert_disjoint(&[("a", &va), ("b", &vb), ("c", &vc)]);
    assert_eq!(union(&sets).len(), usize::from(PARTITIONS), "every partition held: {sets:?}");
    assert!(sets.iter().all(|set| set.len() <= 6), "each at most its share, 16 over 3: {sets:?}");

    // b dies: no more rounds, no release.
    drop(b);
    let deadline = Instant::now() + LEASE * 4;
    loop {
        for leases in [&mut a, &mut c] {
            leases.round().await.expect("round");
            assert_disjoint(&[("a", &va), ("b (dead)", &vb), ("c", &vc)]);
        }
        let sets = assert_disjoint(&[("a", &va), ("c", &vc)]);
        if union(&sets).len() == usize::from(PARTITIONS) {
            assert!(vb.held().is_empty(), "the dead node's own leases lapsed before anyone took them");
            break;
        }
        assert!(Instant::now() < deadline, "b's partitions did not move: {sets:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // d joins.
    let mut d = open("d").await;
    let vd = d.view();
    let deadline = Instant::now() + LEASE * 4;
    loop {
        for leases in [&mut a, &mut c, &mut d] {
            leases.round().await.expect("round");
            assert_disjoint(&[("a", &va), ("c", &vc), ("d", &vd)]);
        }
        let sets = assert_disjoint(&[("a", &va), ("c", &vc), ("d", &vd)]);
        if union(&sets).len() == usize::from(PARTITIONS) && sets.iter().all(|set| set.len() <= 6) {
            assert!(sets[2].len() >= 4, "d got its share: {sets:?}");
            break;
        }
        assert!(Instant::now() < deadline, "d did not get its share: {sets:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // a stops cleanly: c and d take its partitions at their next round,
    // long before its leases would have lapsed.
    a.release().await;
    assert!(va.held().is_empty());
    let released = Instant::now();
    let mut rounds = 0;
    loop {
        for leases in [&mut c, &mut d] {
            leases.round().await.expect("round");
        }
        rounds += 1;
        let sets = assert_disjoint(&[("c", &vc), ("d", &vd)]);
        if union(&sets).len() == usize::from(PARTITIONS) {
            break;
        }
        // d's heartbeat count still includes a for at most the lease time.
        assert!(released.elapsed() < LEASE * 3, "a's partitions did not move after {rounds} rounds: {sets:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rounds <= 2, "a released partitions are taken at the next round, not after the lease ({rounds} rounds)");
}

fn held(node: &Server) -> BTreeSet<u16> {
    let (status, health) = node.get("/healthz", None);
    assert_eq!(status, 200, "{health}");
    health["partitions_held"]
        .as_array()
        .expect("a cluster node names the partitions it holds")
        .iter()
        .filter_map(|p| p.as_u64().map(|p| p as u16))
        .collect()
}

/// Waits until `nodes` hold all 64 partitions between them, disjoint,
/// each at most `share`; panics after `within`.
fn wait_for_cover(nodes: &[&Server], share: usize, within: Duration) -> Vec<BTreeSet<u16>> {
    let deadline = Instant::now() + within;
    loop {
        let sets: Vec<BTreeSet<u16>> = nodes.iter().map(|node| held(node)).collect();
        let disjoint = sets.iter().map(BTreeSet::len).sum::<usize>() == union(&sets).len();
        if union(&sets).len() == 64 && disjoint && sets.iter().all(|set| set.len() <= share) {
            return sets;
        }
        assert!(Instant::now() < deadline, "partitions not covered once: {sets:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Real nodes (`proviso serve --nats`): two nodes hold the cluster's 64
/// partitions, 32 each (`/healthz`); a third joins and gets its share; one
/// stopped cleanly gives its partitions up at once (well inside the lease
/// time); one killed (`kill -9`) gives them up once its leases lapse.
#[test]
fn serving_nodes_share_the_partitions_and_take_over_those_of_a_node_that_stops_or_dies() {
    let temp = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(temp.path());
    let node = |name: &str| {
        Server::start_with(
            &temp.path().join(name),
            &[
                ("PROVISO_NATS", nats.url.as_str()),
                ("PROVISO_PSEUDONYM_KEY", "a5".repeat(32).as_str()),
                ("PROVISO_CLUSTER_LEASE_SECONDS", "8"),
                ("PROVISO_NODE", name),
            ],
        )
    };
    let (a, b) = (node("a"), node("b"));
    wait_for_cover(&[&a, &b], 32, Duration::from_secs(10));
    let c = node("c");
    let sets = wait_for_cover(&[&a, &b, &c], 22, Duration::from_secs(20));
    assert!(sets[2].len() >= 20, "c got its share: {sets:?}");
    let stopped = Instant::now();
    let _ = c.stop();
    wait_for_cover(&[&a, &b], 32, Duration::from_secs(20));
    assert!(stopped.elapsed() < Duration::from_secs(8), "a clean stop moves partitions before the lease lapses");
    drop(b); // kill -9
    let killed = Instant::now();
    wait_for_cover(&[&a], 64, Duration::from_secs(30));
    assert!(killed.elapsed() >= Duration::from_secs(4), "b's leases were held until they lapsed");
}
