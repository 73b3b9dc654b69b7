//! A local `nats-server` for `proviso demo --nodes` and the cluster tests:
//! JetStream in `<dir>/js`, every acknowledged write fsynced
//! (`sync_interval: always`, which cluster mode needs), on a loopback port.
//!
//! Owns: finding the executable (`$NATS_SERVER`, else
//! `target/nats/nats-server` as `bash .ci/run` installs it, else
//! `nats-server` on PATH), its config file, reading the port it picked from
//! its ports file (a port of 0 does not pick a free one; `-1` does), and
//! killing it (when dropped, or `kill -9` on purpose).
//! Never: runs anything but loopback, or outlives its owner.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalNatsError {
    #[error(
        "starting {binary}: {source} (cluster mode here needs nats-server 2.10 or later: set NATS_SERVER to one, \
         or run `bash .ci/run`, which installs the pinned one into target/nats)"
    )]
    Spawn { binary: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("nats-server did not start listening within 20 s; see {0}")]
    NotStarted(String),
}

/// The `nats-server` to run.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let installed = Path::new("target/nats/nats-server");
    if installed.exists() {
        return installed.to_path_buf();
    }
    PathBuf::from("nats-server")
}

/// A running local server; killed when dropped.
pub struct LocalNats {
    child: Child,
    url: String,
    dir: PathBuf,
    /// More of the server's config (authorization, TLS), kept for a restart.
    extra: String,
    /// In a process group of its own ([`LocalNats::start_detached`]).
    detached: bool,
}

impl LocalNats {
    /// Starts a server with its store in `dir/js` on a free loopback port.
    pub fn start(dir: &Path) -> Result<LocalNats, LocalNatsError> {
        LocalNats::start_on(dir, None)
    }

    /// Starts one on `port` (`None`: a free one). A port just given up by a
    /// killed server may still be held for a moment: the server then
    /// exits, and is started again until 20 s have passed.
    pub fn start_on(dir: &Path, port: Option<u16>) -> Result<LocalNats, LocalNatsError> {
        LocalNats::launch(dir, port, "", false)
    }

    /// [`LocalNats::start`] with `extra` added to the server's config file
    /// (an `authorization` block, a `tls` block).
    pub fn start_with_config(dir: &Path, extra: &str) -> Result<LocalNats, LocalNatsError> {
        LocalNats::launch(dir, None, extra, false)
    }

    /// [`LocalNats::start`] in a process group of its own, for a program
    /// that stops its clients before its server (`proviso demo --nodes`):
    /// a Ctrl-C in the terminal, which signals the whole foreground group,
    /// reaches the program and not the server. The server is still sent
    /// SIGTERM when the thread that started it ends (the program exits, is
    /// killed, or calls `exit`), so it never outlives its owner: start it
    /// from a thread that lives as long as it should.
    pub fn start_detached(dir: &Path) -> Result<LocalNats, LocalNatsError> {
        LocalNats::launch(dir, None, "", true)
    }

    fn launch(dir: &Path, port: Option<u16>, extra: &str, detached: bool) -> Result<LocalNats, LocalNatsError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| LocalNatsError::Io { path, source }
        };
        let ports = dir.join("ports");
        std::fs::create_dir_all(&ports).map_err(io(&ports))?;
        let listen = port.map_or_else(|| "127.0.0.1:-1".to_string(), |port| format!("127.0.0.1:{port}"));
        let config = dir.join("nats.conf");
        let text = format!(
            "listen: \"{listen}\"\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n{extra}\n",
            dir.join("js").display()
        );
        std::fs::write(&config, text).map_err(io(&config))?;
        let log_path = dir.join("server.log");
        let binary = binary();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            for old in std::fs::read_dir(&ports).map_err(io(&ports))?.flatten() {
                let _ = std::fs::remove_file(old.path());
            }
            let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
            let mut command = Command::new(&binary);
            command.arg("-c").arg(&config).arg("--ports_file_dir").arg(&ports).stdout(Stdio::null()).stderr(log);
            if detached {
                command.process_group(0);
                // SAFETY: prctl is async-signal-safe, and the closure
                // touches nothing else between fork and exec.
                unsafe {
                    command.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            let child = command
                .spawn()
                .map_err(|source| LocalNatsError::Spawn { binary: binary.display().to_string(), source })?;
            let mut nats =
                LocalNats { child, url: String::new(), dir: dir.to_path_buf(), extra: extra.to_string(), detached };
            let ports_file = ports.join(format!("nats-server_{}.ports", nats.child.id()));
            while Instant::now() < deadline {
                let found = std::fs::read(&ports_file)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                    .and_then(|ports| ports["nats"][0].as_str().map(str::to_string));
                if let Some(url) = found {
                    nats.url = url;
                    return Ok(nats);
                }
                if let Ok(Some(_)) = nats.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LocalNatsError::NotStarted(log_path.display().to_string()))
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where its store and files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `kill -9`: nothing is flushed on the way out.
    pub fn kill(mut self) {
        self.stop();
    }

    /// `kill -9`, then a new server on the same port and store: what a
    /// crashed server's restart looks like to its clients.
    pub fn restart(mut self) -> Result<LocalNats, LocalNatsError> {
        let port = self.url.rsplit(':').next().and_then(|port| port.parse::<u16>().ok());
        self.stop();
        LocalNats::launch(&self.dir.clone(), port, &self.extra.clone(), self.detached)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        self.stop();
    }
}
