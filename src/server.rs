//! Starts a proviso server: pipeline, tokens, Prometheus recorder, HTTP API.
//!
//! Owns: the admin token file, binding the listener, the accept loop with
//! its connection cap and header timeout, graceful shutdown.
//! Never: business logic; it wires together what other modules own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::Config;
use crate::outputs::api::auth::{Role, Tokens};
use crate::outputs::api::error::{ApiError, Code};
use crate::outputs::api::{router, AppState};
use crate::pipeline::Pipeline;

/// File in the data dir holding the generated admin token (mode 0600).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error("admin token file {path}: {source}")]
    AdminToken { path: String, source: std::io::Error },
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Disclosure(#[from] crate::disclose::DiscloseError),
    #[error("joining the cluster")]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// Joins the cluster at `cluster.url`: refused when this node's key,
/// policy or partners differ from the cluster's; opens the cluster's log.
async fn join_cluster(
    config: &Config,
    cluster: &crate::config::ClusterConfig,
) -> Result<
    (crate::pipeline::ClusterOptions, crate::cluster::leases::Leases, crate::outputs::api::usage::Gatherer),
    ServerError,
> {
    let key = config.pseudonym_key.as_ref().ok_or_else(|| {
        ServerError::Cluster(crate::cluster::ClusterError::Connect {
            url: cluster.url.clone(),
            detail: "cluster mode needs PROVISO_PSEUDONYM_KEY".into(),
        })
    })?;
    let jetstream = crate::cluster::connect_with(&cluster.url, &cluster.auth).await?;
    let partners: Vec<_> =
        config.partners.iter().map(|partner| (partner.name.clone(), partner.purposes.clone())).collect();
    let identity = crate::cluster::settings::Identity::of(key, &config.policy, &partners);
    let settings = crate::cluster::settings::join(&jetstream, &identity, cluster.partitions).await?;
    let dedup = std::time::Duration::from_secs(config.idempotency_window_seconds);
    let retention = std::time::Duration::from_secs(config.erasure_compaction_seconds);
    let log = crate::cluster::log::ClusterLog::open(&jetstream, dedup, retention).await?;
    let leases =
        crate::cluster::leases::Leases::open(&jetstream, &cluster.node, settings.partitions, cluster.lease).await?;
    tracing::info!(node = %cluster.node, nats = %cluster.url, tls = cluster.auth.ca.is_some(), partitions = settings.partitions, lease_s = leases.lease().as_secs_f64(), "Joined the cluster.");
    let options = crate::pipeline::ClusterOptions {
        log: Arc::new(log),
        runtime: tokio::runtime::Handle::current(),
        decider: crate::disclose::decider(config.policy.clone(), partners),
    };
    let mut instance = [0u8; 8];
    getrandom::fill(&mut instance).map_err(|error| {
        ServerError::Cluster(crate::cluster::ClusterError::Gather(format!("no randomness: {error}")))
    })?;
    let gather = crate::outputs::api::usage::Gatherer {
        client: jetstream.client(),
        partitions: settings.partitions,
        node: crate::cluster::hex(&instance),
    };
    Ok((options, leases, gather))
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub pipeline: Arc<Pipeline>,
    /// Where the generated admin token is, when none was configured.
    pub admin_token_file: Option<PathBuf>,
    /// The admin token in effect (for `proviso demo` to use and print).
    pub admin_token: String,
}

/// Installs the global Prometheus recorder once per process.
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(crate::telemetry::INGEST_DURATION_SECONDS.to_string()),
                    crate::telemetry::INGEST_DURATION_BUCKETS,
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            crate::telemetry::describe();
            Some(handle)
        })
        .clone()
}

/// Opens the data dir and binds the listener; then serve with [`serve`].
pub async fn start(config: &Config) -> Result<(Running, tokio::net::TcpListener, Arc<AppState>), ServerError> {
    let prometheus = prometheus();
    let mut options = config.pipeline_options();
    let (mut leases, mut gather) = (None, None);
    if let Some(cluster) = &config.cluster {
        let (cluster, held, gatherer) = join_cluster(config, cluster).await?;
        options.cluster = Some(cluster);
        leases = Some(held);
        gather = Some(gatherer);
    }
    let pipeline = tokio::task::spawn_blocking(move || Pipeline::open(options))
        .await
        .map_err(|e| ServerError::Serve(std::io::Error::other(e)))??;
    pipeline.refuse_cluster_copy()?;
    let pipeline = Arc::new(pipeline);
    let mut tokens = Tokens::default();
    let mut admin_token = None;
    for token in &config.tokens {
        if let Some(role) = Role::parse(&token.role) {
            tokens.insert_named(token.token.expose(), role, &token.name);
            if role == Role::Admin && admin_token.is_none() {
                admin_token = Some(token.token.expose().to_string());
            }
        }
    }
    for partner in &config.partners {
        for token in &partner.tokens {
            tokens.insert_partner(token.expose(), &partner.name);
        }
    }
    if let Some(path) = &config.rules_path {
        crate::pipeline::watch_rules(&pipeline, path.clone(), std::time::Duration::from_millis(500));
    }
    let mut admin_token_file = None;
    let admin_token = match admin_token {
        Some(token) => token,
        None => {
            let path = config.data_dir.join(ADMIN_TOKEN_FILE);
            let token = load_or_create_admin_token(&path)?;
            tokens.insert(&token, Role::Admin);
            admin_token_file = Some(path);
            token
        }
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    let partners = config
        .partners
        .iter()
        .map(|partner| crate::disclose::PartnerSettings {
            name: partner.name.clone(),
            purposes: partner.purposes.clone(),
            handle_key: pipeline.edge().partner_handle_key(&partner.name, partner.pseudonym_key.as_ref()),
        })
        .collect();
    let audience = crate::disclose::AudiencePolicy {
        k: config.audience.k,
        epsilon: config.audience.epsilon,
        daily_epsilon: config.audience.daily_epsilon,
        noise_required: config.audience.noise_required,
    };
    let disclosure = crate::disclose::Disclosure::open(Arc::clone(&pipeline), partners, audience)?;
    // Partition leases are taken once the node has caught up (its state
    // stands where the cluster's log does).
    // Every node answers usage questions from its state.
    if let Some(gather) = &gather {
        gather.answer(Arc::clone(&pipeline)).await?;
    }
    // Each round's partitions are the ones whose usage this node holds.
    let leases = leases.map(|leases| {
        let (covering, partitions) = (Arc::clone(&pipeline), leases.partitions());
        let checking = Arc::clone(&pipeline);
        crate::cluster::leases::Keeper::start(
            leases,
            move |held| covering.cover(crate::state::Cover::partitions(partitions, held)),
            move || {
                checking.write_failure().is_none()
                    && checking.cluster_status().is_none_or(|(_, stopped)| stopped.is_none())
            },
        )
    });
    let app = Arc::new(AppState {
        leases,
        gather,
        live: Default::default(),
        closing: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        live_streams: Default::default(),
        limits: config.limits,
        rejected: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        disclosure,
        pipeline: pipeline.clone(),
        tokens,
        max_request_bytes: config.max_request_bytes,
        prometheus,
        backup_dir: config.backup_dir.clone(),
        rules_base_dir: match &config.rules_path {
            Some(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            None => config.data_dir.clone(),
        },
    });
    Ok((Running { addr, pipeline, admin_token_file, admin_token }, listener, app))
}

/// Serves until `shutdown` resolves, then drains the writer and snapshots.
///
/// Each connection holds one of `max_connections` places; one more is
/// answered 503 `too_many_connections` and closed. A connection that has not
/// sent a whole request head within `header_timeout_seconds` (including an
/// idle kept-alive one) is closed, and a request body that stalls for
/// `body_idle_timeout_seconds` ends the request with 408.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let pipeline = app.pipeline.clone();
    let leases = app.leases.clone();
    let closing = app.closing.clone();
    let limits = app.limits;
    let service = router(app);
    let places = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_seconds));
    let body_idle = Duration::from_secs(limits.body_idle_timeout_seconds);
    let mut shutdown = std::pin::pin!(shutdown);
    let requests = Arc::new(AtomicU64::new(0));
    let trimmer = tokio::spawn(trim_when_idle(requests.clone()));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(place) = Arc::clone(&places).try_acquire_owned() else {
            tokio::spawn(refuse_connection(stream));
            continue;
        };
        let router = service.clone();
        let requests = requests.clone();
        let per_request = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            requests.fetch_add(1, Ordering::Relaxed);
            let request = crate::outputs::api::limits::with_idle_timeout(request, body_idle);
            tower_service::Service::call(&mut router.clone(), request)
        });
        let connection = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), per_request));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "Connection ended with an error.");
            }
            drop(place);
        });
    }
    trimmer.abort();
    // Streams (GET /v1/live) end when shutdown begins, so draining waits
    // only for ordinary requests.
    closing.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(listener);
    if let Some(leases) = leases {
        // The other nodes take this node's partitions at once, not after
        // the lease time.
        leases.release(Duration::from_secs(2)).await;
    }
    graceful.shutdown().await;
    tokio::task::spawn_blocking(move || pipeline.shutdown())
        .await
        .map_err(|e| ServerError::Serve(std::io::Error::other(e)))?;
    Ok(())
}

/// How often the server looks at the request count.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Most requests in one tick that still count as quiet: a health check
/// and a metrics scrape a second must not keep freed memory from ever
/// being given back.
const QUIET_REQUESTS: u64 = 2;
/// Requests since the last trim before a quiet tick trims again: a burst's
/// worth, so a slow poller alone costs a trim every so often, not every
/// second.
const REQUESTS_BEFORE_TRIM: u64 = 16;

/// Gives the allocator's free pages back to the system on a quiet tick
/// (at most [`QUIET_REQUESTS`] in the last second) once
/// [`REQUESTS_BEFORE_TRIM`] requests came since the last trim: a burst of
/// suggestions or audiences frees its working memory, which glibc would
/// otherwise keep. Never while requests keep coming (a trim takes each
/// arena's lock in turn, so it would stall their allocations; it takes
/// 0.3-0.6 ms on the partner bench's node).
async fn trim_when_idle(requests: Arc<AtomicU64>) {
    let mut watch = IdleWatch { seen: requests.load(Ordering::Relaxed), since_trim: 0 };
    let mut ticks = tokio::time::interval(IDLE_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if watch.tick(requests.load(Ordering::Relaxed)) {
            let started = std::time::Instant::now();
            if tokio::task::spawn_blocking(crate::pipeline::give_back_free_memory).await.is_ok() {
                tracing::debug!(elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "Gave freed memory back.");
            }
        }
    }
}

/// When to trim: the request count seen at the last tick, and how many
/// requests came since the last trim.
struct IdleWatch {
    seen: u64,
    since_trim: u64,
}

impl IdleWatch {
    /// One tick with the request count now: `true` when it is time to trim.
    fn tick(&mut self, requests: u64) -> bool {
        let arrived = requests.wrapping_sub(self.seen);
        self.seen = requests;
        self.since_trim = self.since_trim.saturating_add(arrived);
        let trim = arrived <= QUIET_REQUESTS && self.since_trim >= REQUESTS_BEFORE_TRIM;
        if trim {
            self.since_trim = 0;
        }
        trim
    }
}

/// Answers a connection over the cap with 503 and the standard error body,
/// then closes it. The request it may have sent is read and discarded for
/// up to a second first, so the close does not reset the connection before
/// the client reads the answer.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    static ANSWER: OnceLock<Vec<u8>> = OnceLock::new();
    let answer = ANSWER.get_or_init(|| {
        let body = ApiError::new(Code::TooManyConnections, "proviso holds its most connections; try again shortly")
            .body_json();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             retry-after: 1\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let answered = async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut discard = [0u8; 4096];
        let mut discarded = 0;
        while discarded < 64 << 10 {
            match stream.read(&mut discard).await? {
                0 => break,
                n => discarded += n,
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answered).await;
}

/// After a failed accept: a connection that failed on its own is skipped;
/// anything else (such as too many open files) is logged and the loop
/// pauses for a second so it does not spin.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(error.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset)
    {
        return;
    }
    tracing::error!(%error, "Accepting a connection failed; retrying in a second.");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

fn load_or_create_admin_token(path: &Path) -> Result<String, ServerError> {
    let io_error = |source| ServerError::AdminToken { path: path.display().to_string(), source };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) | Err(_) if !path.exists() => {
            let token =
                crate::edge::random_token("pva_", 24).map_err(|e| io_error(std::io::Error::other(e.to_string())))?;
            crate::edge::write_private(path, token.as_bytes()).map_err(io_error)?;
            Ok(token)
        }
        Ok(_) => Err(io_error(std::io::Error::other("file is empty; delete it to generate a new token"))),
        Err(error) => Err(io_error(error)),
    }
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::IdleWatch;

    fn trims(counts: &[u64]) -> Vec<usize> {
        let mut watch = IdleWatch { seen: 0, since_trim: 0 };
        counts.iter().enumerate().filter(|(_, &n)| watch.tick(n)).map(|(at, _)| at).collect()
    }

    /// A burst is followed by one trim on the first quiet tick; nothing
    /// trims while requests keep coming or before any came.
    #[test]
    fn trims_once_after_each_burst() {
        assert_eq!(trims(&[0, 0, 100, 400, 400, 400, 900, 1_400, 1_900, 1_900, 1_900]), vec![4, 9]);
        assert_eq!(trims(&[0, 0, 0, 0]), Vec::<usize>::new());
        assert_eq!(trims(&[500, 1_000, 1_500, 2_000]), Vec::<usize>::new(), "busy every second");
    }

    /// A poller of one or two requests a second neither keeps a burst's
    /// memory from being given back nor causes a trim every second: one
    /// trim after the burst, then one per REQUESTS_BEFORE_TRIM of its
    /// requests.
    #[test]
    fn a_slow_poller_does_not_hold_trims_off() {
        let mut counts = vec![200];
        counts.extend((1..=40).map(|second| 200 + second));
        assert_eq!(trims(&counts), vec![1, 17, 33]);
    }
}
