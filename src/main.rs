//! Command line: run the daemon, or check a config file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "llm-monitor", version, about = "Monitors LLM API endpoints and relays; serves their history as JSON")]
struct Cli {
    /// The YAML configuration file.
    #[arg(long, short, global = true, env = "MONITOR_CONFIG", default_value = "config.yaml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration, print every problem, exit 0 (valid) or 1.
    Check,
    /// Ask the running daemon's GET /health: exit 0 on a 200, 1 otherwise, within 5 s. The
    /// address is the daemon's own (MONITOR_LISTEN, else PORT, else the config's `listen`);
    /// 0.0.0.0 and [::] are asked on the loopback. For a container's HEALTHCHECK.
    Health,
    /// Print a completion script for SHELL to stdout (the Debian package installs bash, zsh
    /// and fish ones).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout; with --dir, write it and one page per subcommand
    /// (llm-monitor-check.1, ...) into DIR.
    Manpage {
        /// Where to write every page.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Send one test message through one alert channel (one attempt), print the channel's
    /// answer, exit 0 if the channel accepted it, 1 otherwise.
    AlertTest {
        /// The channel's `name` in `alerts.channels`.
        channel: String,
    },
    /// Copy a SQLite history into PostgreSQL (the schema is created in an empty database).
    /// Resumable and idempotent: run it again after an interruption, or after it finished.
    /// Needs no config file.
    MigrateStore {
        /// The SQLite database to copy (it is only read; its schema is brought up to date).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL URL; default: the environment's MONITOR_DATABASE_URL (which keeps the
        /// password out of `ps`).
        #[arg(long)]
        to: Option<String>,
        /// The node the copied probes belong to; default: the host name (the daemon's default
        /// `node`).
        #[arg(long)]
        node: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    llm_monitor::logging::init();
    if rustls::crypto::ring::default_provider().install_default().is_err() {
        log::debug!("a TLS crypto provider was already installed");
    }
    match &cli.command {
        Some(Command::MigrateStore { from, to, node }) => return migrate_store(from, to.as_deref(), node.as_deref()),
        Some(Command::Health) => return health(&cli.config),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(*shell, &mut Cli::command(), "llm-monitor", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Manpage { dir }) => {
            let written = match dir {
                Some(dir) => clap_mangen::generate_to(Cli::command(), dir),
                // As generate_to writes it: no page for `help`, so none is referred to.
                None => {
                    clap_mangen::Man::new(Cli::command().disable_help_subcommand(true)).render(&mut std::io::stdout())
                }
            };
            return match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("manpage: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
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
        println!("{}: OK, {} monitors ({} disabled)", cli.config.display(), config.monitor_count(), config.disabled);
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

/// `health`: one GET of the running daemon's `/health`.
fn health(config: &std::path::Path) -> ExitCode {
    use llm_monitor::healthcheck;
    let address = healthcheck::daemon_address(config, &|name| std::env::var(name).ok());
    if let Some(note) = &address.note {
        eprintln!("health: {note}; using {}", address.source);
    }
    let target = match healthcheck::target(&address.listen) {
        Ok(target) => target,
        Err(e) => {
            println!("unhealthy: {e} (from {})", address.source);
            return ExitCode::FAILURE;
        }
    };
    match actix_rt::System::new().block_on(healthcheck::check(&target)) {
        Ok(line) => {
            println!("healthy: {line}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            println!("unhealthy: {line}");
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
        send::send(channel, &message, &ctx, &send::client(channel.proxy.as_ref()), &alerts.redactor, now * 1_000).await
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

/// `migrate-store`: copies a SQLite history into PostgreSQL, with a progress bar.
fn migrate_store(from: &std::path::Path, to: Option<&str>, node: Option<&str>) -> ExitCode {
    let url = match to.map(str::to_string).or_else(|| std::env::var("MONITOR_DATABASE_URL").ok()) {
        Some(url) if !url.is_empty() => url,
        _ => {
            eprintln!("migrate-store: give --to postgres://... or set MONITOR_DATABASE_URL");
            return ExitCode::FAILURE;
        }
    };
    let url = match llm_monitor::config::PgUrl::parse(&url) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("migrate-store: the target {e}");
            return ExitCode::FAILURE;
        }
    };
    let node = node.map_or_else(llm_monitor::config::default_node_name, str::to_string);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} probes ({percent}%, {per_sec}, {eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let result = llm_monitor::store::migrate::migrate_store(from, &url, &node, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    match result {
        Ok(copied) => {
            println!(
                "migrate-store: {} probes copied to {} as node {node:?} ({} copied before), {} events",
                copied.probes,
                url.shown(),
                copied.skipped,
                copied.events
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate-store: {}", url.redact(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}
