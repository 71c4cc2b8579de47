use std::process::ExitCode;

use clap::Parser;
use relais::cli::Cli;

fn main() -> ExitCode {
    relais::memory::one_arena();
    let Cli { config, command } = Cli::parse();
    // One TLS crypto backend for the whole process (AMQP and SMTP).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("relais: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(relais::commands::dispatch(config.as_deref(), command))
}
