//! `standby servers`: backup servers on the store directly, above all those whose host runs
//! `standby agent`: register one (printing its one-time enrollment token), list them with their
//! agents' state, issue a new token (revoking the credential), remove one.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use standby_api::servers::{DEFAULT_ENROLLMENT_SECONDS, MAX_ENROLLMENT_SECONDS, server_json};
use standby_model::Timestamp;
use standby_store::agents::ServerRemoval;
use standby_store::{AuditAction, Location, Scope};

use crate::admin::{audit, with_store};

#[derive(Subcommand)]
pub enum ServersCommand {
    /// Register a backup server whose host runs `standby agent`; prints its one-time
    /// enrollment token alone on the last line.
    Add {
        name: String,
        /// The company (or the provider) the server belongs to, by name or UID.
        #[arg(long)]
        org: String,
        /// How long the token can be used: `90m`, `24h`, `7d` (at most 30 days) [default: 24h].
        #[arg(long)]
        expires: Option<String>,
    },
    /// Every backup server with its connector, online state, last heartbeat and agent version.
    List {
        /// `table` or `json`.
        #[arg(long, short = 'o', default_value = "table")]
        output: String,
        /// An agent not heard from for this long is offline (as `serve --agent-offline-seconds`).
        #[arg(long, env = "STANDBY_AGENT_OFFLINE_SECONDS", default_value_t = 30)]
        offline_seconds: u64,
    },
    /// Revoke the server's agent credential at once and print a new enrollment token alone on
    /// the last line.
    Reenroll {
        name: String,
        #[arg(long)]
        expires: Option<String>,
    },
    /// Remove a server with its plans and their history; refused while a plan on it runs.
    Remove { name: String },
}

/// `90m`, `24h`, `7d`, `3600s` or plain seconds.
fn parse_expiry(text: Option<&str>) -> anyhow::Result<Duration> {
    let Some(text) = text.map(str::trim) else {
        return Ok(Duration::from_secs(DEFAULT_ENROLLMENT_SECONDS as u64));
    };
    let (number, unit) = match text.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => (&text[..at], unit),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => bail!("--expires '{text}': the unit must be s, m, h or d"),
    };
    let seconds = number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| (60..=MAX_ENROLLMENT_SECONDS).contains(s))
        .with_context(|| format!("--expires '{text}' must be from 1 minute to 30 days"))?;
    Ok(Duration::from_secs(seconds as u64))
}

fn new_token() -> anyhow::Result<(String, String)> {
    standby_api::agents::new_enrollment_token().map_err(|e| anyhow::anyhow!("{}", e.error.message))
}

pub async fn servers(command: ServersCommand, location: &Location) -> anyhow::Result<()> {
    with_store(location, async |store| {
        let agents = store.agents();
        match command {
            ServersCommand::Add { name, org, expires } => {
                let life = parse_expiry(expires.as_deref())?;
                let organizations = store.list_organizations().await?;
                let Some(organization) = organizations.iter().find(|o| {
                    o.name == org || uuid::Uuid::parse_str(&org).is_ok_and(|uid| uid == o.uid)
                }) else {
                    bail!("no organization named '{org}' (see `standby orgs list`)");
                };
                let name = name.trim();
                if name.is_empty() || name.chars().count() > 255 {
                    bail!("a server name is 1 to 255 characters");
                }
                let now = Timestamp::now();
                let expires_at = now.plus_millis(life.as_millis() as i64);
                let (token, hash) = new_token()?;
                let Some(uid) = agents
                    .add_agent_server(name, organization.uid, &hash, expires_at, now)
                    .await?
                else {
                    bail!("a backup server named '{name}' exists already");
                };
                audit(
                    store,
                    AuditAction::ServerAdd,
                    &uid.to_string(),
                    format!("{name} in {}", organization.name),
                )
                .await?;
                println!(
                    "Added backup server {name} ({uid}) in {}, connected through an agent.",
                    organization.name
                );
                println!(
                    "Its enrollment token (one use, until {}): start the agent with --enroll TOKEN",
                    expires_at.to_wire()
                );
                println!("{token}");
            }
            ServersCommand::List {
                output,
                offline_seconds,
            } => {
                let servers = agents.servers(Scope::All).await?;
                let now = Timestamp::now();
                let offline_after = Duration::from_secs(offline_seconds);
                match output.as_str() {
                    "json" => {
                        let list: Vec<_> = servers
                            .iter()
                            .map(|server| server_json(server, now, offline_after))
                            .collect();
                        println!("{}", serde_json::to_string_pretty(&list)?);
                    }
                    "table" => {
                        println!(
                            "{:<24} {:<9} {:<20} {:<8} {:<30} {:<9} UID",
                            "NAME", "CONNECTOR", "ORGANIZATION", "ONLINE", "LAST HEARTBEAT", "AGENT"
                        );
                        for server in &servers {
                            let agent = server.agent.as_ref();
                            let online = match agent {
                                None => "yes",
                                Some(agent) if agent.online(now, offline_after) => "yes",
                                Some(agent) if agent.enrolled_at.is_none() => "enrolling",
                                Some(_) => "no",
                            };
                            println!(
                                "{:<24} {:<9} {:<20} {:<8} {:<30} {:<9} {}",
                                server.name,
                                server.connector,
                                server.organization_name,
                                online,
                                agent
                                    .and_then(|a| a.last_seen)
                                    .map_or_else(|| "-".to_owned(), |t| t.to_wire()),
                                agent
                                    .map(|a| a.agent_version.as_str())
                                    .filter(|v| !v.is_empty())
                                    .unwrap_or("-"),
                                server.uid
                            );
                        }
                    }
                    other => bail!("--output must be table or json, not '{other}'"),
                }
            }
            ServersCommand::Reenroll { name, expires } => {
                let life = parse_expiry(expires.as_deref())?;
                let Some(server) = agents.server_by_name(&name).await? else {
                    bail!("no backup server named '{name}' (see `standby servers list`)");
                };
                let expires_at = Timestamp::now().plus_millis(life.as_millis() as i64);
                let (token, hash) = new_token()?;
                if !agents.reenroll(server.uid, &hash, expires_at).await? {
                    bail!(
                        "backup server {name} is not connected through an agent (its connector is {})",
                        server.connector
                    );
                }
                audit(
                    store,
                    AuditAction::ServerReenroll,
                    &server.uid.to_string(),
                    format!("{name}: credential revoked, new token"),
                )
                .await?;
                println!("Revoked the agent credential of {name}; its agent is refused from now on.");
                println!(
                    "The new enrollment token (one use, until {}): restart the agent with --enroll TOKEN",
                    expires_at.to_wire()
                );
                println!("{token}");
            }
            ServersCommand::Remove { name } => {
                let Some(server) = agents.server_by_name(&name).await? else {
                    bail!("no backup server named '{name}' (see `standby servers list`)");
                };
                match agents.remove_server(server.uid).await? {
                    ServerRemoval::Removed => {
                        audit(
                            store,
                            AuditAction::ServerRemove,
                            &server.uid.to_string(),
                            name.clone(),
                        )
                        .await?;
                        println!("Removed backup server {name} with its plans and their history.");
                    }
                    ServerRemoval::NotFound => bail!("no backup server named '{name}'"),
                    ServerRemoval::PlansRunning(plans) => bail!(
                        "backup server {name} is not removed: a session runs on {}; remove it when they end",
                        plans.join(", ")
                    ),
                }
            }
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_read_with_their_units_and_stay_in_bounds() {
        let seconds = |text: &str| parse_expiry(Some(text)).map(|d| d.as_secs()).ok();
        assert_eq!(parse_expiry(None).ok().map(|d| d.as_secs()), Some(86_400));
        assert_eq!(seconds("90m"), Some(5_400));
        assert_eq!(seconds("24h"), Some(86_400));
        assert_eq!(seconds("7d"), Some(604_800));
        assert_eq!(seconds("3600"), Some(3_600));
        assert_eq!(seconds("30s"), None, "under a minute");
        assert_eq!(seconds("31d"), None, "over 30 days");
        assert_eq!(seconds("2w"), None);
        assert_eq!(seconds("h"), None);
        assert_eq!(seconds("-5m"), None);
    }
}
