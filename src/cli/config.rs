//! `proviso config show`.

use proviso::config::OptArgs;

/// Inspect the configuration.
#[derive(Debug, clap::Args)]
pub struct ConfigCommand {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigAction {
    /// Print the configuration in force as TOML: built-in defaults, then the
    /// --config file, then environment variables, then flags, checked as
    /// `serve` checks them. Secrets (tokens, pseudonym keys) print as "***";
    /// the output is a valid config file otherwise.
    ///
    /// Example:
    ///   PROVISO_LISTEN=0.0.0.0:7420 proviso config show --config proviso.toml
    #[command(verbatim_doc_comment)]
    Show {
        #[command(flatten)]
        options: OptArgs,
    },
}

pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command.action {
        ConfigAction::Show { options } => {
            let config = super::resolve_config(&options)?;
            let file = match &config.opt.config {
                Some(path) => path.display().to_string(),
                None => "no config file".to_string(),
            };
            println!("# In force: built-in defaults < {file} < environment < flags. Secrets print as \"***\".");
            print!("{}", config.opt.to_toml());
            Ok(())
        }
    }
}
