//! `proviso config show` and `proviso config docs`.

use proviso::config::OptArgs;

/// Inspect the configuration.
#[derive(Debug, clap::Args)]
pub struct ConfigCommand {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigAction {
    /// Print the configuration in force as TOML, secrets masked
    ///
    /// Layers, lowest first: built-in defaults, the --config file,
    /// environment variables, flags; checked as `serve` checks them.
    /// Secrets (tokens, pseudonym keys) print as "***"; otherwise the
    /// output is a valid config file.
    ///
    /// Example:
    ///   PROVISO_LISTEN=0.0.0.0:7420 proviso config show --config proviso.toml
    #[command(verbatim_doc_comment)]
    Show {
        // Boxed: every option is in it, and `Docs` is empty.
        #[command(flatten)]
        options: Box<OptArgs>,
    },
    /// Print the options reference of docs/configuration.md
    ///
    /// Flag, environment variable, file key, default and description of
    /// every option, generated from the options struct; a test keeps the
    /// file equal to it. Paste it between the file's OPTIONS markers.
    Docs,
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
        ConfigAction::Docs => {
            print!("{}", proviso::config::docs::options_reference());
            Ok(())
        }
    }
}
