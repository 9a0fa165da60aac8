//! The `chute` command: parses the command line and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use chute::app::Application;
use chute::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "chute",
    version,
    about = "A log router daemon: syslog and HTTP in, sharded PostgreSQL out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon. Without a config file, runs on the embedded default:
    /// HTTP on 127.0.0.1:7280, data and a private PostgreSQL in ./chute-data.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, env = "CHUTE_CONFIG")]
        config: Option<PathBuf>,
        /// Log format; overrides `[log] format`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Check a configuration file: every error with its key path (exit 1), or a
    /// one-line summary (exit 0).
    Validate {
        #[arg(long, env = "CHUTE_CONFIG")]
        config: PathBuf,
    },
}

fn load(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    match path {
        None => Ok(Config::default()),
        Some(p) => Config::load(p).map_err(|e| {
            eprintln!("{}: {e}", p.display());
            ExitCode::FAILURE
        }),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => match load(Some(&config)) {
            Ok(c) => {
                println!("{}", c.summary());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Serve { config, log_format } => {
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            chute::telemetry::init(&config.log.level, log_format.unwrap_or(config.log.format));
            match actix::System::new().block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("chute: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await.context("cannot start")?;
    app.run_until_stopped().await
}
