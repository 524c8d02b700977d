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
    /// Send one test message through one alert channel (one attempt), print the channel's
    /// answer, exit 0 if the channel accepted it, 1 otherwise.
    AlertTest {
        /// The channel's `name` in `alerts.channels`.
        channel: String,
    },
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
    if let Some(Command::AlertTest { channel }) = &cli.command {
        return alert_test(&config, channel);
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

/// `alert-test CHANNEL`: one attempt through one channel, as the daemon would send it.
fn alert_test(config: &llm_monitor::config::Config, name: &str) -> ExitCode {
    use llm_monitor::alert::{message::RenderContext, send, EventKind, Message};
    let alerts = &config.alerts;
    let Some(channel) = alerts.channel(name) else {
        let known: Vec<&str> = alerts.channels.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "no channel named {name:?} in alerts.channels (configured: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        );
        return ExitCode::FAILURE;
    };
    let now = llm_monitor::clock::unix_now();
    let message = Message {
        id: 0,
        event: EventKind::Test,
        monitor: None,
        monitors: Vec::new(),
        status: None,
        reason: None,
        detail: None,
        started_at: None,
        resolved_at: None,
        time: now,
        down_id: None,
        node: None,
    };
    let attempt = actix_rt::System::new().block_on(async {
        let ctx = RenderContext {
            language: alerts.language,
            timezone: alerts.timezone,
            public_url: alerts.public_url.as_deref(),
        };
        send::send(channel, &message, &ctx, &send::client(), &alerts.redactor, now * 1_000).await
    });
    println!("{name} ({}): {}", channel.kind.type_name(), attempt.answer);
    if attempt.accepted {
        println!("{name}: accepted");
        ExitCode::SUCCESS
    } else {
        println!("{name}: NOT accepted");
        ExitCode::FAILURE
    }
}
