//! Settings for `standby serve`: flags and `STANDBY_*` environment variables override the TOML
//! config file, which overrides the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every flag is also a config-file key (same name, `_` for `-`) and an environment variable.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:1280].
    #[arg(long, env = "STANDBY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory holding the SQLite database [default: ./standby-data].
    #[arg(long, env = "STANDBY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The database instead of the data directory: `postgres://USER:PASSWORD@HOST/DB` for
    /// several nodes on one PostgreSQL, or `sqlite://PATH`.
    #[arg(long, env = "STANDBY_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// How long a worker's hold on a running session lasts without renewal, in seconds, 3 to
    /// 300: how soon another node takes over the sessions of a node that died [default: 15].
    #[arg(long, env = "STANDBY_LEASE_SECONDS")]
    lease_seconds: Option<u64>,
    /// Load the built-in demo fleet when the store is empty (`--demo`, or `--demo false`).
    #[arg(long, env = "STANDBY_DEMO", num_args = 0..=1, default_missing_value = "true")]
    demo: Option<bool>,
    /// Import this fleet file at start-up (idempotent).
    #[arg(long, env = "STANDBY_FLEET")]
    fleet: Option<PathBuf>,
    /// TOML config file.
    #[arg(long, env = "STANDBY_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on standard error [default: text].
    #[arg(long, env = "STANDBY_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Largest `limit` a list accepts (VSPC's MaxPageSize) [default: 500].
    #[arg(long, env = "STANDBY_MAX_PAGE_SIZE")]
    max_page_size: Option<u32>,
    /// MiB of serialized read answers kept until the next write, 0 to 4096; 0 turns the
    /// response cache off [default: 64].
    #[arg(long, env = "STANDBY_RESPONSE_CACHE_MIB")]
    response_cache_mib: Option<usize>,
    /// How long an X-Request-id is remembered, in seconds, 1 to 86400 [default: 300].
    #[arg(long, env = "STANDBY_IDEMPOTENCY_WINDOW_SECONDS")]
    idempotency_window_seconds: Option<i64>,
    /// Access token lifetime in seconds, 60 to 86400 [default: 3600].
    #[arg(long, env = "STANDBY_ACCESS_TOKEN_SECONDS")]
    access_token_seconds: Option<i64>,
    /// Sessions this process runs at once [default: 16].
    #[arg(long, env = "STANDBY_WORKERS")]
    workers: Option<usize>,
    /// VMs of one plan booting at once [default: 10].
    #[arg(long, env = "STANDBY_MAX_PARALLEL_BOOTS")]
    max_parallel_boots: Option<usize>,
    /// Seconds between undo batches of 5 VMs [default: 10].
    #[arg(long, env = "STANDBY_UNDO_BATCH_INTERVAL_SECONDS")]
    undo_batch_interval_seconds: Option<u64>,
    /// A VM step not finished this many seconds after it started fails that VM; the plan goes
    /// on. An unreachable host is retried until then. 1 to 86400 [default: 900].
    #[arg(long, env = "STANDBY_VM_STEP_TIMEOUT_SECONDS")]
    vm_step_timeout_seconds: Option<u64>,
    /// Attempts a session gets (each crash, lost lease or error ends one) before it ends Failed
    /// with the reason, 1 to 100 [default: 5].
    #[arg(long, env = "STANDBY_MAX_SESSION_ATTEMPTS")]
    max_session_attempts: Option<u32>,
    /// A backup server whose agent has not been heard from for this many seconds is offline:
    /// its VM steps are retried until their deadline, then fail. 3 to 3600 [default: 30].
    #[arg(long, env = "STANDBY_AGENT_OFFLINE_SECONDS")]
    agent_offline_seconds: Option<u64>,
    /// The sim connector's boot time per VM in milliseconds, `MIN-MAX` [default: 2000-6000].
    #[arg(long, env = "STANDBY_SIM_BOOT_MS")]
    sim_boot_ms: Option<String>,
    /// A drill retries a failed undo after this many seconds, doubling with each attempt
    /// (5 attempts), 1 to 3600 [default: 15].
    #[arg(long, env = "STANDBY_DRILL_UNDO_RETRY_SECONDS")]
    drill_undo_retry_seconds: Option<u64>,
    /// A failed notification is retried after this many seconds, doubling up to an hour, for
    /// 24 hours, 1 to 3600 [default: 5].
    #[arg(long, env = "STANDBY_NOTIFICATION_RETRY_SECONDS")]
    notification_retry_seconds: Option<u64>,
    /// The SMTP relay email notifications go through: smtp://HOST:PORT (plain),
    /// smtp://HOST:587?tls=required (STARTTLS) or smtps://USER:PASSWORD@HOST:465.
    #[arg(long, env = "STANDBY_SMTP_URL")]
    smtp_url: Option<String>,
    /// The sender of email notifications [default: standby@HOSTNAME-less localhost].
    #[arg(long, env = "STANDBY_SMTP_FROM")]
    smtp_from: Option<String>,
    /// How long a successful async action stays readable, in seconds [default: 300].
    #[arg(long, env = "STANDBY_ACTION_SUCCESS_RETENTION_SECONDS")]
    action_success_retention_seconds: Option<u64>,
    /// How long a failed or cancelled async action stays readable, in seconds [default: 3600].
    #[arg(long, env = "STANDBY_ACTION_FAILURE_RETENTION_SECONDS")]
    action_failure_retention_seconds: Option<u64>,
    /// How long a finished job is kept, in seconds, 1 to 3650 days [default: 86400].
    #[arg(long, env = "STANDBY_DONE_JOB_RETENTION_SECONDS")]
    done_job_retention_seconds: Option<u64>,
    /// How long a finished operation stays in the sim connector's ledger, and an answered
    /// command in an agent's queue, in seconds, 1 to 3650 days [default: 604800].
    #[arg(long, env = "STANDBY_LEDGER_RETENTION_SECONDS")]
    ledger_retention_seconds: Option<u64>,
    /// How long an audit row is kept, in seconds, 1 to 3650 days [default: 34560000, 400 days].
    #[arg(long, env = "STANDBY_AUDIT_RETENTION_SECONDS")]
    audit_retention_seconds: Option<u64>,
    /// How long a sent notification and its delivery log are kept, in seconds, 1 to 3650 days
    /// [default: 2592000, 30 days].
    #[arg(long, env = "STANDBY_NOTIFICATION_RETENTION_SECONDS")]
    notification_retention_seconds: Option<u64>,
    /// How often the background purge runs, in seconds, 1 to 3600 [default: 60].
    #[arg(long, env = "STANDBY_PURGE_INTERVAL_SECONDS")]
    purge_interval_seconds: Option<u64>,
    /// Requests per minute one user may make; an address may make twice as many [default: 1200].
    #[arg(long, env = "STANDBY_THROTTLE_REQUESTS_PER_MINUTE")]
    throttle_requests_per_minute: Option<u32>,
    /// Requests one user may have in flight; an address twice as many [default: 32].
    #[arg(long, env = "STANDBY_THROTTLE_CONCURRENT")]
    throttle_concurrent: Option<usize>,
    /// Failed logins per user name per 5 minutes before logins wait; an address gets 4 times
    /// as many [default: 5].
    #[arg(long, env = "STANDBY_LOGIN_FAILURES_PER_5_MINUTES")]
    login_failures_per_5_minutes: Option<u32>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "STANDBY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, env = "STANDBY_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// A client must send a request's headers within this many seconds; an idle keep-alive
    /// connection is closed after as long [default: 30].
    #[arg(long, env = "STANDBY_HEADER_READ_TIMEOUT_SECONDS")]
    header_read_timeout_seconds: Option<u64>,
    /// The address clients reach this server by, behind a proxy or load balancer
    /// (`https://dr.example.com` or with a path prefix): `Location` headers start with it
    /// [default: the scheme served and the authority each request names].
    #[arg(long, env = "STANDBY_PUBLIC_URL")]
    public_url: Option<String>,
}

/// The config file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    lease_seconds: Option<u64>,
    demo: Option<bool>,
    fleet: Option<PathBuf>,
    log_format: Option<LogFormat>,
    max_page_size: Option<u32>,
    response_cache_mib: Option<usize>,
    idempotency_window_seconds: Option<i64>,
    access_token_seconds: Option<i64>,
    workers: Option<usize>,
    max_parallel_boots: Option<usize>,
    undo_batch_interval_seconds: Option<u64>,
    vm_step_timeout_seconds: Option<u64>,
    max_session_attempts: Option<u32>,
    agent_offline_seconds: Option<u64>,
    sim_boot_ms: Option<String>,
    drill_undo_retry_seconds: Option<u64>,
    notification_retry_seconds: Option<u64>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    action_success_retention_seconds: Option<u64>,
    action_failure_retention_seconds: Option<u64>,
    done_job_retention_seconds: Option<u64>,
    ledger_retention_seconds: Option<u64>,
    audit_retention_seconds: Option<u64>,
    notification_retention_seconds: Option<u64>,
    purge_interval_seconds: Option<u64>,
    throttle_requests_per_minute: Option<u32>,
    throttle_concurrent: Option<usize>,
    login_failures_per_5_minutes: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    header_read_timeout_seconds: Option<u64>,
    public_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `--database`, else the SQLite file in `--data-dir`.
    pub store: standby_store::Location,
    pub demo: bool,
    pub fleet: Option<PathBuf>,
    pub log_format: LogFormat,
    pub api: standby_api::ApiSettings,
    /// Certificate chain and key (PEM) when serving HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Slow clients: the time allowed to send a request's headers.
    pub header_read_timeout: Duration,
    pub engine: standby_engine::EngineSettings,
    pub sim: standby_engine::sim::SimSettings,
    /// From `STANDBY_ADMIN_USER` / `STANDBY_ADMIN_PASSWORD` (environment only: no secrets in files).
    pub admin: Option<(String, String)>,
    /// What the background purge keeps, and how often it runs.
    pub retention: standby_store::retention::Retention,
    pub purge_interval: Duration,
}

/// A retention in seconds, 1 s to 3650 days, or `default`.
fn retention(name: &str, seconds: Option<u64>, default: Duration) -> anyhow::Result<Duration> {
    match seconds {
        None => Ok(default),
        Some(seconds) if (1..=3650 * 86_400).contains(&seconds) => Ok(Duration::from_secs(seconds)),
        Some(seconds) => bail!("{name} must be 1 to 315360000 (3650 days), not {seconds}"),
    }
}

impl Settings {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileSettings>(&text)
                    .with_context(|| format!("in config file {}", path.display()))?
            }
            None => FileSettings::default(),
        };
        let defaults = standby_api::ApiSettings::default();
        let max_page_size = args
            .max_page_size
            .or(file.max_page_size)
            .unwrap_or(defaults.max_page_size);
        if max_page_size == 0 || max_page_size > i32::MAX as u32 {
            bail!("max_page_size must be between 1 and {}", i32::MAX);
        }
        let response_cache_mib = args
            .response_cache_mib
            .or(file.response_cache_mib)
            .unwrap_or(defaults.response_cache_bytes >> 20);
        if response_cache_mib > 4096 {
            bail!("response_cache_mib must be between 0 and 4096, not {response_cache_mib}");
        }
        let idempotency_window_seconds = args
            .idempotency_window_seconds
            .or(file.idempotency_window_seconds)
            .unwrap_or(defaults.idempotency_window_seconds);
        if !(1..=86_400).contains(&idempotency_window_seconds) {
            bail!("idempotency_window_seconds must be between 1 and 86400");
        }
        let access_token_seconds = args
            .access_token_seconds
            .or(file.access_token_seconds)
            .unwrap_or(defaults.access_token_seconds);
        if !(60..=86_400).contains(&access_token_seconds) {
            bail!("access_token_seconds must be between 60 and 86400");
        }
        let admin = match (
            std::env::var("STANDBY_ADMIN_USER").ok(),
            std::env::var("STANDBY_ADMIN_PASSWORD").ok(),
        ) {
            (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                Some((user, password))
            }
            (None, None) => None,
            _ => bail!("set both STANDBY_ADMIN_USER and STANDBY_ADMIN_PASSWORD, or neither"),
        };
        let engine_defaults = standby_engine::EngineSettings::default();
        let workers = args
            .workers
            .or(file.workers)
            .unwrap_or(engine_defaults.workers);
        let max_parallel_boots = args
            .max_parallel_boots
            .or(file.max_parallel_boots)
            .unwrap_or(engine_defaults.max_parallel_boots);
        if !(1..=64).contains(&workers) || !(1..=1000).contains(&max_parallel_boots) {
            bail!("workers must be 1 to 64 and max_parallel_boots 1 to 1000");
        }
        let lease = match args.lease_seconds.or(file.lease_seconds) {
            None => engine_defaults.lease,
            Some(seconds) if (3..=300).contains(&seconds) => Duration::from_secs(seconds),
            Some(seconds) => bail!("lease_seconds must be 3 to 300, not {seconds}"),
        };
        let store = match args.database.or(file.database) {
            Some(url) => standby_store::Location::parse(&url)?,
            None => standby_store::Location::data_dir(
                &args
                    .data_dir
                    .or(file.data_dir)
                    .unwrap_or_else(|| PathBuf::from("./standby-data")),
            ),
        };
        let undo_interval = args
            .undo_batch_interval_seconds
            .or(file.undo_batch_interval_seconds)
            .map_or(engine_defaults.undo_batch_interval, Duration::from_secs);
        let vm_step_timeout = match args
            .vm_step_timeout_seconds
            .or(file.vm_step_timeout_seconds)
        {
            None => engine_defaults.vm_step_timeout,
            Some(seconds) if (1..=86_400).contains(&seconds) => Duration::from_secs(seconds),
            Some(seconds) => bail!("vm_step_timeout_seconds must be 1 to 86400, not {seconds}"),
        };
        let max_session_attempts = match args.max_session_attempts.or(file.max_session_attempts) {
            None => engine_defaults.max_session_attempts,
            Some(attempts) if (1..=100).contains(&attempts) => attempts,
            Some(attempts) => bail!("max_session_attempts must be 1 to 100, not {attempts}"),
        };
        let agent_offline_after = match args.agent_offline_seconds.or(file.agent_offline_seconds) {
            None => defaults.agent_offline_after,
            Some(seconds) if (3..=3600).contains(&seconds) => Duration::from_secs(seconds),
            Some(seconds) => bail!("agent_offline_seconds must be 3 to 3600, not {seconds}"),
        };
        let boot_ms = match args.sim_boot_ms.or(file.sim_boot_ms) {
            None => standby_engine::sim::SimSettings::default().boot_ms,
            Some(text) => parse_range(&text)
                .with_context(|| format!("sim_boot_ms '{text}' is not MIN-MAX in milliseconds"))?,
        };
        let success_retention = args
            .action_success_retention_seconds
            .or(file.action_success_retention_seconds)
            .map_or(engine_defaults.success_retention, Duration::from_secs);
        let failure_retention = args
            .action_failure_retention_seconds
            .or(file.action_failure_retention_seconds)
            .map_or(engine_defaults.failure_retention, Duration::from_secs);
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        let public_url = args
            .public_url
            .or(file.public_url)
            .map(|text| parse_public_url(&text))
            .transpose()?;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 1280)));
        let serves_tls = tls.is_some();
        let smtp = match args.smtp_url.or(file.smtp_url) {
            None => None,
            Some(url) => {
                let from = args
                    .smtp_from
                    .or(file.smtp_from)
                    .unwrap_or_else(|| "Standby <standby@localhost>".to_owned());
                if from.parse::<lettre::message::Mailbox>().is_err() {
                    bail!(
                        "smtp_from '{from}' is not an email address (such as Standby <dr@example.net>)"
                    );
                }
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&url)
                    .map_err(|e| anyhow::anyhow!("smtp_url is not an SMTP URL ({e}): smtp://HOST:PORT, smtp://HOST:587?tls=required or smtps://USER:PASSWORD@HOST:465"))?;
                Some(standby_api::SmtpSettings { url, from })
            }
        };
        let kept = standby_store::retention::Retention::default();
        let retention = standby_store::retention::Retention {
            done_jobs: retention(
                "done_job_retention_seconds",
                args.done_job_retention_seconds
                    .or(file.done_job_retention_seconds),
                kept.done_jobs,
            )?,
            ledger: retention(
                "ledger_retention_seconds",
                args.ledger_retention_seconds
                    .or(file.ledger_retention_seconds),
                kept.ledger,
            )?,
            audit: retention(
                "audit_retention_seconds",
                args.audit_retention_seconds
                    .or(file.audit_retention_seconds),
                kept.audit,
            )?,
            notifications: retention(
                "notification_retention_seconds",
                args.notification_retention_seconds
                    .or(file.notification_retention_seconds),
                kept.notifications,
            )?,
        };
        let purge_interval = match args.purge_interval_seconds.or(file.purge_interval_seconds) {
            None => Duration::from_secs(60),
            Some(seconds) if (1..=3600).contains(&seconds) => Duration::from_secs(seconds),
            Some(seconds) => bail!("purge_interval_seconds must be 1 to 3600, not {seconds}"),
        };
        Ok(Settings {
            retention,
            purge_interval,
            tls,
            header_read_timeout: Duration::from_secs(
                args.header_read_timeout_seconds
                    .or(file.header_read_timeout_seconds)
                    .unwrap_or(30)
                    .clamp(1, 3600),
            ),
            engine: standby_engine::EngineSettings {
                workers,
                max_parallel_boots,
                undo_batch_interval: undo_interval,
                lease,
                vm_step_timeout,
                max_session_attempts,
                success_retention,
                failure_retention,
                ..engine_defaults
            },
            sim: standby_engine::sim::SimSettings {
                boot_ms,
                ..Default::default()
            },
            listen,
            store,
            demo: args.demo.or(file.demo).unwrap_or(false),
            fleet: args.fleet.or(file.fleet),
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            api: standby_api::ApiSettings {
                max_page_size,
                response_cache_bytes: response_cache_mib << 20,
                idempotency_window_seconds,
                access_token_seconds,
                refresh_token_seconds: defaults.refresh_token_seconds,
                request_timeout: Duration::from_secs(60),
                action_retention_seconds: success_retention.as_secs(),
                agent_offline_after,
                throttle: standby_api::throttle::ThrottleSettings {
                    user_per_window: args
                        .throttle_requests_per_minute
                        .or(file.throttle_requests_per_minute)
                        .unwrap_or(1200)
                        .max(1),
                    user_concurrent: args
                        .throttle_concurrent
                        .or(file.throttle_concurrent)
                        .unwrap_or(32)
                        .max(1),
                    login_failures: args
                        .login_failures_per_5_minutes
                        .or(file.login_failures_per_5_minutes)
                        .unwrap_or(5)
                        .max(1),
                    ..Default::default()
                },
                public_url,
                tls: serves_tls,
                own_authority: listen.to_string(),
                console_session_seconds: defaults.console_session_seconds,
                drill_undo_retry: Duration::from_secs(
                    args.drill_undo_retry_seconds
                        .or(file.drill_undo_retry_seconds)
                        .unwrap_or(15)
                        .clamp(1, 3600),
                ),
                notification_retry: Duration::from_secs(
                    args.notification_retry_seconds
                        .or(file.notification_retry_seconds)
                        .unwrap_or(5)
                        .clamp(1, 3600),
                ),
                smtp,
            },
            admin,
        })
    }
}

/// `--public-url`: an absolute http(s) URL with a host, no query or fragment; kept without its
/// trailing slash so that `Location` paths append to it.
fn parse_public_url(text: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(text.trim())
        .with_context(|| format!("public_url '{text}' is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        bail!(
            "public_url must be http(s)://HOST[:PORT][/PREFIX], without credentials, query or fragment; not '{text}'"
        );
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `MIN-MAX` (or a single number) in milliseconds.
fn parse_range(text: &str) -> anyhow::Result<(u64, u64)> {
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let (low, high): (u64, u64) = (low.trim().parse()?, high.trim().parse()?);
    if low > high || high > 3_600_000 {
        bail!("MIN must not exceed MAX, and MAX is at most 3600000");
    }
    Ok((low, high))
}
