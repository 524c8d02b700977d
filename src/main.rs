//! Command line: run the daemon, or check a config file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "llm-monitor", version, about = "Monitors LLM API endpoints and relays; serves their history as JSON")]
struct Cli {
    /// The YAML configuration file.
    #[arg(long, short, global = true, default_value = "config.yaml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration, print every problem, exit 0 (valid) or 1.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    llm_monitor::logging::init();
    if rustls::crypto::ring::default_provider().install_default().is_err() {
        log::debug!("a TLS crypto provider was already installed");
    }
    // `check` and the daemon run the same validation: what one accepts the other starts with.
    let config = match llm_monitor::config::load(&cli.config) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{}: invalid configuration ({}):", cli.config.display(), errors.summary());
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    llm_monitor::limits::release_free_memory();
    if let Some(Command::Check) = cli.command {
        for warning in &config.warnings {
            println!("warning: {warning}");
        }
        println!("{}: OK, {} monitors ({} disabled)", cli.config.display(), config.monitors.len(), config.disabled);
        return ExitCode::SUCCESS;
    }
    let result = actix_rt::System::new().block_on(llm_monitor::app::run(config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
