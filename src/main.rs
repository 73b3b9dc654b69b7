//! The `proviso` binary: parses the command line, starts tracing, and hands
//! off to `cli/`. No business logic lives here.

mod cli;

fn main() -> std::process::ExitCode {
    let cli = cli::parse();
    cli::init_tracing(&cli.global);
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
