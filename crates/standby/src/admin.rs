//! `standby orgs`, `users`, `apikeys`, `audit`: administration on the store directly (`--data-dir`).

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::Subcommand;
use standby_api::users::{add_user, change_password, parse_role};
use standby_model::Timestamp;
use standby_model::WireEnum;
use standby_store::{AuditAction, AuditEntry, AuditOutcome, Location, Store};
use uuid::Uuid;

#[derive(Subcommand)]
pub enum OrgsCommand {
    /// List organizations: the provider and its companies.
    List,
}

#[derive(Subcommand)]
pub enum ApiKeysCommand {
    /// Create an API key for a user; it is printed once and stored only as a hash.
    Add {
        /// The user the key acts as.
        name: String,
        /// The key may only read (GET); writes get 403.
        #[arg(long)]
        read_only: bool,
        #[arg(long, default_value = "")]
        description: String,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a user. Without --password-stdin a password is generated and printed once.
    Add {
        name: String,
        /// The user's organization, by name or UID.
        #[arg(long)]
        org: String,
        /// A VSPC role, e.g. PortalAdministrator, CompanyOwner, ReadOnlyUser.
        #[arg(long)]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their organization, role and state.
    List,
    /// Set a new password (revokes the user's tokens).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: every token of theirs stops working at once.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
    /// Remove a user and their tokens.
    Remove { name: String },
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

/// Opens the store a command-line command works on.
pub async fn open_store(location: &Location) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    standby_store::open(location)
        .await
        .with_context(|| format!("opening the store {}", location.describe()))
}

/// Runs a command-line command on the store at `location`, then closes the store whatever the
/// outcome, so that a SQLite store is left without its write-ahead log.
pub async fn with_store<T>(
    location: &Location,
    work: impl AsyncFnOnce(&dyn Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let store = open_store(location).await?;
    let result = work(store.as_ref()).await;
    store.close().await;
    result
}

/// Records a change made on the command line (actor `cli`, address `local`).
pub(crate) async fn audit(
    store: &dyn Store,
    action: AuditAction,
    target: &str,
    detail: String,
) -> anyhow::Result<()> {
    let entry = AuditEntry {
        uid: Uuid::now_v7(),
        at: Timestamp::now(),
        actor_uid: None,
        actor_name: "cli".to_owned(),
        address: "local".to_owned(),
        action,
        target: Some(target.to_owned()),
        outcome: AuditOutcome::Success,
        detail,
    };
    store
        .record_audit(&entry)
        .await
        .context("writing the audit record")
}

pub async fn orgs(command: OrgsCommand, location: &Location) -> anyhow::Result<()> {
    with_store(location, async |store| {
        match command {
            OrgsCommand::List => {
                println!("{:<38} {:<9} NAME", "UID", "KIND");
                for organization in store.list_organizations().await? {
                    println!(
                        "{:<38} {:<9} {}",
                        organization.uid,
                        organization.kind.as_str(),
                        organization.name
                    );
                }
            }
        }
        Ok(())
    })
    .await
}

pub async fn users(command: UsersCommand, location: &Location) -> anyhow::Result<()> {
    with_store(location, async |store| {
        match command {
            UsersCommand::Add {
                name,
                org,
                role,
                password_stdin,
            } => {
                let role = parse_role(&role)?;
                let password = if password_stdin {
                    Some(read_password()?)
                } else {
                    None
                };
                let (user, generated) = add_user(store, &name, &org, role, password).await?;
                audit(
                    store,
                    AuditAction::UserAdd,
                    &name,
                    format!("role {}, organization {org}", user.role),
                )
                .await?;
                match generated {
                    Some(password) => println!(
                        "Added {} ({}) with password {password} (shown once).",
                        user.name, user.role
                    ),
                    None => println!("Added {} ({}).", user.name, user.role),
                }
            }
            UsersCommand::List => {
                let organizations = store.list_organizations().await?;
                println!("{:<24} {:<36} {:<9} ORGANIZATION", "NAME", "ROLE", "STATE");
                for user in store.list_users().await? {
                    let organization = organizations
                        .iter()
                        .find(|o| o.uid == user.organization_uid)
                        .map_or("?", |o| o.name.as_str());
                    let state = if user.disabled { "disabled" } else { "enabled" };
                    println!(
                        "{:<24} {:<36} {:<9} {organization}",
                        user.name,
                        user.role.as_str(),
                        state
                    );
                }
            }
            UsersCommand::Passwd {
                name,
                password_stdin,
            } => {
                let password = if password_stdin {
                    Some(read_password()?)
                } else {
                    None
                };
                let generated = change_password(store, &name, password).await?;
                audit(
                    store,
                    AuditAction::UserPassword,
                    &name,
                    "password changed; tokens revoked".into(),
                )
                .await?;
                match generated {
                    Some(password) => println!(
                        "New password for {name}: {password} (shown once). Their tokens were revoked."
                    ),
                    None => println!("Password changed for {name}. Their tokens were revoked."),
                }
            }
            UsersCommand::Disable { name } => {
                if !store.set_disabled(&name, true).await? {
                    bail!("no user named '{name}'");
                }
                audit(store, AuditAction::UserDisable, &name, "tokens revoked".into()).await?;
                println!("Disabled {name}; their tokens no longer work.");
            }
            UsersCommand::Enable { name } => {
                if !store.set_disabled(&name, false).await? {
                    bail!("no user named '{name}'");
                }
                audit(store, AuditAction::UserEnable, &name, String::new()).await?;
                println!("Enabled {name}.");
            }
            UsersCommand::Remove { name } => {
                if !store.remove_user(&name).await? {
                    bail!("no user named '{name}'");
                }
                audit(
                    store,
                    AuditAction::UserRemove,
                    &name,
                    "user, tokens and API keys deleted".into(),
                )
                .await?;
                println!("Removed {name}.");
            }
        }
        Ok(())
    })
    .await
}

pub async fn apikeys(command: ApiKeysCommand, location: &Location) -> anyhow::Result<()> {
    with_store(location, async |store| {
        match command {
            ApiKeysCommand::Add {
                name,
                read_only,
                description,
            } => {
                let Some(user) = store.find_user_by_name(&name).await? else {
                    bail!("no user named '{name}'");
                };
                let (key, record) = standby_api::secrets::new_api_key(user.uid, &description, read_only)
                    .map_err(|e| anyhow::anyhow!("{}", e.error.message))?;
                store.insert_api_key(&record).await?;
                audit(
                    store,
                    AuditAction::ApiKeyAdd,
                    &name,
                    if read_only {
                        "read-only".into()
                    } else {
                        "read-write".into()
                    },
                )
                .await?;
                let access = if read_only { "read-only" } else { "read-write" };
                println!("API key for {name} ({access}): {key}");
                println!(
                    "It is shown once; use it as 'Authorization: Bearer <key>'. It works until {name} is disabled or removed."
                );
            }
        }
        Ok(())
    })
    .await
}

/// `standby audit`: the newest audit records.
pub async fn show_audit(limit: u32, location: &Location) -> anyhow::Result<()> {
    with_store(location, async |store| {
        let page = store.list_audit(limit, 0).await?;
        println!(
            "{:<33} {:<16} {:<15} {:<14} {:<8} {:<37} DETAIL",
            "TIME", "ACTOR", "ADDRESS", "ACTION", "OUTCOME", "TARGET"
        );
        for entry in page.items {
            println!(
                "{:<33} {:<16} {:<15} {:<14} {:<8} {:<37} {}",
                entry.at.to_wire(),
                entry.actor_name,
                entry.address,
                entry.action,
                entry.outcome,
                entry.target.unwrap_or_default(),
                entry.detail
            );
        }
        println!(
            "({} of {} records)",
            page.total.min(u64::from(limit)),
            page.total
        );
        Ok(())
    })
    .await
}

/// `standby store copy`: the whole installation into an empty store, verified.
pub async fn copy_store(from: &Location, to: &Location) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let copied = standby_store::copy::copy_store(from, to)
        .await
        .with_context(|| format!("copying {} to {}", from.describe(), to.describe()))?;
    println!(
        "{:<18} {:>10}  SHA-256 (rows in key order)",
        "TABLE", "ROWS"
    );
    for table in &copied {
        println!("{:<18} {:>10}  {}", table.table, table.rows, table.checksum);
    }
    let rows: u64 = copied.iter().map(|t| t.rows).sum();
    println!(
        "Copied {rows} rows in {} tables from {} to {} in {:.1} s; every table verified by count and checksum.",
        copied.len(),
        from.describe(),
        to.describe(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// small (10 servers, 1,000 VMs), medium (1,000 servers, 100,000 VMs) or large (10,000
    /// servers, 100,000 plans, 1,000,000 VMs); the flags below override its numbers.
    #[arg(long)]
    preset: Option<String>,
    #[arg(long)]
    servers: Option<u32>,
    #[arg(long)]
    plans_per_server: Option<u32>,
    #[arg(long)]
    vms_per_plan: Option<u32>,
    #[arg(long)]
    points_per_vm: Option<u32>,
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    pub store: crate::StoreArgs,
}

/// Servers per transaction: a slice is about 10,000 VMs with the presets' shape.
const GENERATE_SLICE: u32 = 100;

/// `standby fleet generate`: slice by slice into the store, with a progress bar.
pub async fn generate(args: &GenerateArgs, location: &Location) -> anyhow::Result<()> {
    use standby_fleet::generate::{FleetShape, organizations, servers};
    let base = match &args.preset {
        Some(name) => FleetShape::preset(name)
            .with_context(|| format!("unknown preset '{name}': use small, medium or large"))?,
        None => FleetShape::preset("small").context("the small preset")?,
    };
    let shape = FleetShape {
        servers: args.servers.unwrap_or(base.servers),
        plans_per_server: args.plans_per_server.unwrap_or(base.plans_per_server),
        vms_per_plan: args.vms_per_plan.unwrap_or(base.vms_per_plan),
        points_per_vm: args.points_per_vm.unwrap_or(base.points_per_vm),
        seed: args.seed.unwrap_or(base.seed),
    };
    if shape.servers == 0 || shape.plans_per_server == 0 || shape.vms_per_plan == 0 {
        bail!("servers, plans per server and VMs per plan must be at least 1");
    }
    if shape.vms() > 10_000_000 || shape.points_per_vm > 1_000 {
        bail!("at most 10,000,000 VMs and 1,000 restore points per VM");
    }
    with_store(location, async |store| {
        let started = std::time::Instant::now();
        let now = Timestamp::now();
        store
            .import_fleet(&organizations(&shape))
            .await
            .context("writing the organizations")?;
        let bar = indicatif::ProgressBar::new(shape.vms());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} VMs ({per_sec}, {eta} left)",
            )
            .context("progress bar template")?,
        );
        let mut first = 0;
        while first < shape.servers {
            let last = (first + GENERATE_SLICE).min(shape.servers);
            let slice = servers(&shape, first..last, now);
            store
                .import_fleet(&slice)
                .await
                .with_context(|| format!("writing servers {first} to {last}"))?;
            bar.inc(slice.objects.len() as u64);
            first = last;
        }
        bar.finish_and_clear();
        store
            .refresh_statistics()
            .await
            .context("analyzing the generated fleet")?;
        println!(
            "Generated {} servers, {} plans, {} VMs and {} restore points into {} in {:.1} s.",
            shape.servers,
            shape.plans(),
            shape.vms(),
            shape.vms() * u64::from(shape.points_per_vm),
            location.describe(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    })
    .await
}
