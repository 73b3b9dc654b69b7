//! `proviso serve`.

use anyhow::Context;
use proviso::config::OptArgs;
use proviso::server;

/// Run the HTTP server.
///
/// Prints `proviso listening on http://ADDR` once ready. Without
/// PROVISO_ADMIN_TOKEN, the first start writes a generated admin token to
/// <data>/admin.token (mode 0600). Stop with Ctrl-C or SIGTERM: the writer
/// drains, a snapshot is written, and the next start replays only what
/// came after it.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ServeCommand {
    #[command(flatten)]
    pub options: OptArgs,
}

pub fn run(command: ServeCommand) -> anyhow::Result<()> {
    let config = super::resolve_config(&command.options)?;
    super::runtime()?.block_on(async move {
        let (running, listener, app) =
            server::start(&config).await.with_context(|| format!("opening data dir {}", config.data_dir.display()))?;
        let report = running.pipeline.open_report();
        tracing::info!(
            data = %config.data_dir.display(),
            from_snapshot = report.from_snapshot,
            replayed_records = report.replayed_records,
            policy = %config.policy_source,
            "Data dir opened."
        );
        if let Some(path) = &running.admin_token_file {
            eprintln!("admin token: see {} (set PROVISO_ADMIN_TOKEN to choose one)", path.display());
        }
        println!("proviso listening on http://{}", running.addr);
        server::serve(listener, app, server::shutdown_signal()).await?;
        tracing::info!("Stopped cleanly.");
        Ok(())
    })
}
