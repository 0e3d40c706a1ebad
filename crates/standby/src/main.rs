//! `standby`: the failover-plan control plane. `standby serve` runs the server; `login`,
//! `plans` and `actions` are the operator's client of a running server (over HTTP); `agent`
//! runs on a DR host and connects out to the server; the other subcommands administer a store (a data directory, or the database named by `--database`).

mod admin;
mod agent;
mod client;
mod config;
mod serve;
mod servers;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use standby_fleet::FleetFile;
use standby_model::Timestamp;
use standby_store::Location;

// glibc's allocator spent a fifth of a busy server's CPU in malloc/free and lock contention
// between worker threads (perf, 100-plan pages on 2 cores); mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "standby",
    version,
    about = "Failover-plan control plane, wire-compatible with VSPC REST API v3"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<config::ServeArgs>),
    /// Log in to a running server; the session is kept in ~/.config/standby (0600).
    Login(client::LoginArgs),
    /// Forget the saved session.
    Logout,
    /// Failover plans on the server you are logged in to: list, show, start, undo, watch.
    Plans {
        #[command(subcommand)]
        command: client::PlansCommand,
        #[command(flatten)]
        output: client::OutputArgs,
    },
    /// Async actions on the server you are logged in to: list, show, cancel.
    Actions {
        #[command(subcommand)]
        command: client::ActionsCommand,
        #[command(flatten)]
        output: client::OutputArgs,
    },
    /// Scheduled drills on the server you are logged in to: list, show, create, pause, resume,
    /// run, delete, report.
    Drills {
        #[command(subcommand)]
        command: client::DrillsCommand,
        #[command(flatten)]
        output: client::OutputArgs,
    },
    /// Notification channels on the server you are logged in to: list, add, delete,
    /// deliveries.
    Webhooks {
        #[command(subcommand)]
        command: client::WebhooksCommand,
        #[command(flatten)]
        output: client::OutputArgs,
    },
    /// Fleet files: import one into a data directory, or print the demo fleet as one.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Organizations in a data directory.
    Orgs {
        #[command(subcommand)]
        command: admin::OrgsCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The agent that runs on a DR host: `run` it, or read its `operations` ledger.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Backup servers: register an agent's host, list them with their agents' state, reenroll,
    /// remove.
    Servers {
        #[command(subcommand)]
        command: servers::ServersCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The audit trail: the newest records first.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// API keys: long-lived bearer credentials for scripts.
    Apikeys {
        #[command(subcommand)]
        command: admin::ApiKeysCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Whole stores: copy an installation between SQLite and PostgreSQL.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Users in a data directory: add, list, passwd, disable, enable, remove.
    Users {
        #[command(subcommand)]
        command: admin::UsersCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Load a fleet file into the store (idempotent: stable UIDs, upserts).
    Import {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the built-in demo fleet as a fleet file (a worked example of the format).
    Demo,
    /// Write a synthetic fleet straight into the store, for benchmarks: a preset (small =
    /// 1,000 VMs, medium = 100,000, large = 1,000,000) or an explicit shape.
    Generate(Box<admin::GenerateArgs>),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy every table into a new, empty store and verify it by counts and checksums. Stop
    /// the servers first: writes made during the copy are not carried over.
    Copy {
        /// The source: `sqlite://PATH` (PATH is the database file, such as
        /// ./standby-data/standby.db) or `postgres://USER:PASSWORD@HOST/DB`.
        #[arg(long)]
        from: String,
        /// The destination, created and migrated if needed; it must hold no data.
        #[arg(long)]
        to: String,
    },
}

#[derive(Args)]
pub struct StoreArgs {
    /// Data directory holding the SQLite database.
    #[arg(
        long,
        env = "STANDBY_DATA_DIR",
        default_value = "./standby-data",
        global = true
    )]
    data_dir: PathBuf,
    /// The database instead of the data directory (`postgres://...` or `sqlite://PATH`).
    #[arg(
        long,
        env = "STANDBY_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database: Option<String>,
}

impl StoreArgs {
    pub fn location(&self) -> anyhow::Result<Location> {
        Ok(match &self.database {
            Some(url) => Location::parse(url)?,
            None => Location::data_dir(&self.data_dir),
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS crypto provider for the whole process (ring, as the server's TLS uses): the API
    // client, the agent's client and the notification dispatcher all build on it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The client commands choose their own exit codes (see `client`); the rest fail with 1.
    let result = runtime.block_on(async {
        match cli.command {
            Command::Login(args) => return Ok(client::login(args).await),
            Command::Logout => return Ok(client::logout()),
            Command::Plans { command, output } => return Ok(client::plans(command, output).await),
            Command::Drills { command, output } => {
                return Ok(client::drills(command, output).await);
            }
            Command::Webhooks { command, output } => {
                return Ok(client::webhooks(command, output).await);
            }
            Command::Actions { command, output } => {
                return Ok(client::actions(command, output).await);
            }
            Command::Serve(args) => serve::run(config::Settings::resolve(*args)?).await,
            Command::Agent(command) => agent::agent(command).await,
            Command::Fleet(FleetCommand::Import { file, store }) => {
                import(&file, &store.location()?).await
            }
            Command::Orgs { command, store } => admin::orgs(command, &store.location()?).await,
            Command::Servers { command, store } => {
                servers::servers(command, &store.location()?).await
            }
            Command::Audit { limit, store } => admin::show_audit(limit, &store.location()?).await,
            Command::Apikeys { command, store } => {
                admin::apikeys(command, &store.location()?).await
            }
            Command::Users { command, store } => admin::users(command, &store.location()?).await,
            Command::Store(StoreCommand::Copy { from, to }) => {
                admin::copy_store(&Location::parse(&from)?, &Location::parse(&to)?).await
            }
            Command::Fleet(FleetCommand::Generate(args)) => {
                let location = args.store.location()?;
                admin::generate(&args, &location).await
            }
            Command::Fleet(FleetCommand::Demo) => {
                print!(
                    "{}",
                    toml::to_string(&standby_fleet::demo::demo_file())
                        .context("rendering the demo fleet")?
                );
                Ok(())
            }
        }
        .map(|()| ExitCode::SUCCESS)
    });
    result.unwrap_or_else(|error: anyhow::Error| {
        eprintln!("Error: {error:?}");
        ExitCode::FAILURE
    })
}

async fn import(file: &std::path::Path, location: &Location) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let fleet = FleetFile::parse(&text)
        .and_then(|f| f.resolve(Timestamp::now()))
        .with_context(|| format!("in {}", file.display()))?;
    admin::with_store(location, async |store| {
        let summary = store
            .import_fleet(&fleet)
            .await
            .context("importing the fleet")?;
        store
            .refresh_statistics()
            .await
            .context("analyzing the imported fleet")?;
        println!(
            "Imported {}: {} organizations, {} servers, {} plans, {} VMs; {} new restore points.",
            file.display(),
            fleet.organizations.len(),
            fleet.servers.len(),
            fleet.plans.len(),
            fleet.objects.len(),
            summary.restore_points_added
        );
        Ok(())
    })
    .await
}
