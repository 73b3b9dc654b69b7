//! The `proviso` binary: parses the command line, starts tracing, and hands
//! off to `cli/`. No business logic lives here.

mod cli;

fn main() -> std::process::ExitCode {
    let cli = cli::parse();
    cli::init_tracing(&cli.global);
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", render(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined by colons, leaving out a cause whose
/// text the message already ends with (a library error that names its
/// source in its own text, `locking PATH: SOURCE`, would print it twice).
fn render(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.is_empty() {
            message = text;
        } else if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    /// Each cause once, in order, and one a message already ends with left out.
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        #[derive(Debug, thiserror::Error)]
        #[error("locking /d/LOCK: {source}")]
        struct Locking {
            source: std::io::Error,
        }
        let error = anyhow::Error::new(Locking { source: io }).context("opening data dir /d");
        assert_eq!(super::render(&error), "opening data dir /d: locking /d/LOCK: no such file");
        let plain = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(super::render(&plain), "outer: middle: inner");
    }
}
