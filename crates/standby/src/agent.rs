//! `standby agent`: the agent of a DR host (the `standby-agent` crate), run from this binary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use standby_agent::RunOptions;

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Run the agent: enroll once, push the host's inventory, take commands and report, with
    /// heartbeats. Connects out only (HTTP or HTTPS); opens no listening socket.
    Run(Box<RunArgs>),
    /// Print the agent's ledger: every operation it received, how many times it executed it,
    /// and how it ended. Safe while the agent runs.
    Operations {
        #[arg(long, env = "STANDBY_AGENT_STATE_DIR")]
        state_dir: PathBuf,
        /// `table` or `json`.
        #[arg(long, short = 'o', default_value = "table")]
        output: String,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// The control plane, such as https://standby.example.net:1280.
    #[arg(long, env = "STANDBY_CONTROL_URL", hide_env_values = true)]
    control_url: String,
    /// The host's manifest: its plans, VMs and driver (see examples/agent/sim-host.toml).
    #[arg(long, env = "STANDBY_AGENT_CONFIG")]
    config: PathBuf,
    /// Where the agent keeps its credential (0600) and its ledger.
    #[arg(long, env = "STANDBY_AGENT_STATE_DIR")]
    state_dir: PathBuf,
    /// The one-time enrollment token from `standby servers add` (only needed once).
    #[arg(long, env = "STANDBY_AGENT_ENROLL", hide_env_values = true)]
    enroll: Option<String>,
    /// A PEM file of a certificate authority to trust for the control plane's TLS.
    #[arg(long, env = "STANDBY_AGENT_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Seconds between heartbeats, 1 to 60 [default: 5].
    #[arg(long, env = "STANDBY_AGENT_HEARTBEAT_SECONDS")]
    heartbeat_seconds: Option<u64>,
    /// Seconds one long poll for commands waits, 1 to 30 [default: 20].
    #[arg(long, env = "STANDBY_AGENT_POLL_SECONDS")]
    poll_seconds: Option<u64>,
}

pub async fn agent(command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::Run(args) => {
            let heartbeat = match args.heartbeat_seconds {
                None => RunOptions::DEFAULT_HEARTBEAT,
                Some(seconds) if (1..=60).contains(&seconds) => Duration::from_secs(seconds),
                Some(seconds) => bail!("--heartbeat-seconds must be 1 to 60, not {seconds}"),
            };
            let poll_wait = match args.poll_seconds {
                None => RunOptions::DEFAULT_POLL_WAIT,
                Some(seconds) if (1..=30).contains(&seconds) => Duration::from_secs(seconds),
                Some(seconds) => bail!("--poll-seconds must be 1 to 30, not {seconds}"),
            };
            crate::telemetry::init(crate::config::LogFormat::Text);
            let options = RunOptions {
                control_url: args.control_url,
                config: args.config,
                state_dir: args.state_dir,
                enroll: args.enroll,
                ca_cert: args.ca_cert,
                heartbeat,
                poll_wait,
            };
            standby_agent::run(options, crate::serve::shutdown_signal()).await?;
            Ok(())
        }
        AgentCommand::Operations { state_dir, output } => {
            let entries = standby_agent::operations(&state_dir).await?;
            match output.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&entries)?),
                "table" => print!("{}", standby_agent::render_operations(&entries)),
                other => bail!("--output must be table or json, not '{other}'"),
            }
            Ok(())
        }
    }
}
