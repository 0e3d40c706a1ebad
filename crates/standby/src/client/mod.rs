//! The operator's side of the `standby` binary: commands that talk to a running server over its
//! HTTP API (never to the store), for terminals and for scripts.
//!
//! Exit codes: 0 ok, 1 error (network, server fault, local file), 2 usage, 3 not found,
//! 4 ambiguous plan name, 5 refused by the server (conflict, bad input, forbidden, throttled),
//! 6 a run ended failed, 7 not logged in or the login was rejected.

mod actions;
mod api;
mod credentials;
mod drills;
mod events;
mod plans;
mod table;
mod watch;
mod webhooks;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use credentials::CredentialStore;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Local(String),
    #[error("cannot reach the server: {0}")]
    Transport(String),
    #[error("{0}")]
    NotLoggedIn(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error("{message}")]
    Api {
        status: u16,
        code: i64,
        message: String,
    },
    #[error("{0}")]
    RunFailed(String),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Local(_) | ClientError::Transport(_) => 1,
            ClientError::Usage(_) => 2,
            ClientError::NotFound(_) => 3,
            ClientError::Ambiguous(_) => 4,
            ClientError::RunFailed(_) => 6,
            ClientError::NotLoggedIn(_) => 7,
            ClientError::Api { status, .. } => match status {
                404 => 3,
                401 => 7,
                400..=499 => 5,
                _ => 1,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Aligned columns, coloured on a terminal.
    #[default]
    Table,
    /// The API's own JSON, for scripts.
    Json,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct OutputArgs {
    /// `table` for people, `json` (the API's own JSON) for scripts.
    #[arg(
        long,
        short = 'o',
        value_enum,
        default_value_t,
        global = true,
        env = "STANDBY_OUTPUT"
    )]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The server, such as http://127.0.0.1:1280.
    url: String,
    /// The user name.
    #[arg(long)]
    user: String,
    /// Read the password from standard input instead of prompting (for scripts).
    #[arg(long)]
    password_stdin: bool,
    /// Trust this PEM certificate (a private CA or the server's self-signed certificate).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PlansCommand {
    /// List plans, filtered on the server (so it scales to large fleets).
    List(plans::ListArgs),
    /// One plan in full, with its last run's log.
    Show {
        /// A plan UID or an unambiguous name.
        plan: String,
    },
    /// The VMs of a plan with their last failover result.
    Objects {
        /// A plan UID or an unambiguous name.
        plan: String,
    },
    /// The restore point each VM would get from a start now (or `--at` a point in time).
    Preview {
        /// A plan UID or an unambiguous name.
        plan: String,
        /// A date (00:00 UTC) or an RFC 3339 date-time; each VM gets its newest point at or
        /// before it.
        #[arg(long)]
        at: Option<String>,
    },
    /// Start a failover (or with `--test` a test failover) of one or more plans.
    Start {
        /// Plan UIDs or unambiguous names.
        #[arg(required = true)]
        plans: Vec<String>,
        /// A date (00:00 UTC) or an RFC 3339 date-time: each VM fails over to its newest
        /// restore point at or before it. Without it, the latest points.
        #[arg(long)]
        at: Option<String>,
        /// Test mode: the VMs boot isolated and production is untouched.
        #[arg(long)]
        test: bool,
        /// Follow the runs live until they end, then print a summary.
        #[arg(long)]
        wait: bool,
    },
    /// Undo the failover of one or more plans.
    Undo {
        /// Plan UIDs or unambiguous names.
        #[arg(required = true)]
        plans: Vec<String>,
        /// Follow the runs live until they end, then print a summary.
        #[arg(long)]
        wait: bool,
    },
    /// Follow the newest run of one or more plans live until it ends.
    Watch {
        /// Plan UIDs or unambiguous names.
        #[arg(required = true)]
        plans: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct CreateDrillArgs {
    /// The drill's name.
    #[arg(long)]
    name: String,
    /// A plan to test (UID or unambiguous name); repeat for several, in the order they run.
    #[arg(long = "plan")]
    plans: Vec<String>,
    /// Instead of --plan: a plan filter as the API's `filter=` takes it (JSON), resolved at
    /// each run.
    #[arg(long)]
    filter: Option<String>,
    /// Cron: five fields (minute first) or six (seconds first), such as "0 2 * * SUN".
    #[arg(long)]
    schedule: String,
    /// The IANA time zone the schedule is read in.
    #[arg(long = "tz", default_value = "UTC")]
    time_zone: String,
    /// Seconds each test failover stays up after it ends before it is undone.
    #[arg(long = "ttl")]
    ttl_seconds: u32,
    /// At most this many VMs in test at once.
    #[arg(long)]
    max_parallel_vms: u32,
    /// Skip the rest of a run after this many failed tests (0: never).
    #[arg(long, default_value_t = 0)]
    stop_after_failures: u32,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
}

#[derive(Subcommand, Debug)]
pub enum DrillsCommand {
    /// Drills you can see, with their next run.
    List,
    /// One drill (UID or name) and its recent runs.
    Show { drill: String },
    /// Schedule a drill.
    Create(CreateDrillArgs),
    /// Stop scheduling runs (a run in progress goes on).
    Pause { drill: String },
    /// Schedule runs again, the next one counted from now.
    Resume { drill: String },
    /// Run it now.
    Run { drill: String },
    /// Delete it (a run in progress still undoes its tests).
    Delete { drill: String },
    /// A run's report, plan by plan (the newest run unless one is given).
    Report { drill: String, run: Option<String> },
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Notification channels you can see.
    List,
    /// Add a webhook (--url, its secret piped in with --secret-stdin) or an email address.
    Add {
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Read the webhook's signing secret (16 to 256 characters) from standard input.
        #[arg(long)]
        secret_stdin: bool,
        /// An event to send (repeat for several); none: every event.
        #[arg(long = "event")]
        events: Vec<String>,
    },
    /// Delete a channel and its delivery log.
    Delete { id: String },
    /// A channel's delivery log, newest first.
    Deliveries {
        id: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum ActionsCommand {
    /// Your async actions (starts, undos, patches), newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One async action, and its result once it has finished.
    Show { id: String },
    /// Cancel a running action: the run stops at its next safe point.
    Cancel { id: String },
}

/// Logs in, prints where the session was saved.
pub async fn login(args: LoginArgs) -> ExitCode {
    finish(login_inner(args).await)
}

async fn login_inner(args: LoginArgs) -> Result<(), ClientError> {
    let store = CredentialStore::from_environment()?;
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| ClientError::Local(format!("reading the password: {e}")))?;
        text.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(ClientError::Usage(
                "standard input is not a terminal: pass --password-stdin and pipe the password"
                    .into(),
            ));
        }
        rpassword::prompt_password(format!("Password for {} at {}: ", args.user, args.url))
            .map_err(|e| ClientError::Local(format!("reading the password: {e}")))?
    };
    if password.is_empty() {
        return Err(ClientError::Usage("the password is empty".into()));
    }
    let credentials = api::Api::login(&args.url, &args.user, &password, args.ca_cert.as_deref())
        .await
        .map_err(|error| match error {
            ClientError::Api { message, .. } => {
                ClientError::NotLoggedIn(format!("login refused: {message}"))
            }
            other => other,
        })?;
    let path = store.save(&credentials)?;
    eprintln!(
        "Logged in to {} as {} (session saved in {}).",
        credentials.url,
        credentials.user,
        path.display()
    );
    Ok(())
}

/// Forgets the saved session.
pub fn logout() -> ExitCode {
    finish(CredentialStore::from_environment().and_then(|store| {
        if store.remove()? {
            eprintln!("Logged out.");
        } else {
            eprintln!("Not logged in.");
        }
        Ok(())
    }))
}

pub async fn plans(command: PlansCommand, output: OutputArgs) -> ExitCode {
    let result = async {
        let api = api::Api::connect(CredentialStore::from_environment()?)?;
        plans::run(&api, command, output.output).await
    };
    finish(result.await)
}

pub async fn actions(command: ActionsCommand, output: OutputArgs) -> ExitCode {
    let result = async {
        let api = api::Api::connect(CredentialStore::from_environment()?)?;
        actions::run(&api, command, output.output).await
    };
    finish(result.await)
}

pub async fn drills(command: DrillsCommand, output: OutputArgs) -> ExitCode {
    let result = async {
        let api = api::Api::connect(CredentialStore::from_environment()?)?;
        drills::run(&api, command, output.output).await
    };
    finish(result.await)
}

pub async fn webhooks(command: WebhooksCommand, output: OutputArgs) -> ExitCode {
    let result = async {
        let api = api::Api::connect(CredentialStore::from_environment()?)?;
        webhooks::run(&api, command, output.output).await
    };
    finish(result.await)
}

fn finish(result: Result<(), ClientError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "{} {error}",
                console::style("error:").red().bold().for_stderr()
            );
            ExitCode::from(error.exit_code())
        }
    }
}

/// Prints a value as pretty JSON on standard output.
fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}
