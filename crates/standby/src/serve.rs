//! `standby serve`: open the store, load fleets, make sure an administrator exists, serve.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use anyhow::Context;
use standby_fleet::FleetFile;
use standby_model::Timestamp;

/// The HTTP server's own limits: slow clients time out, and requests pass through to Standby's
/// `request_limits` layer (which refuses them in the error envelope) up to a little past its
/// limits, on HTTP/1 and HTTP/2 alike. (A macro: the plain and the TLS server are different types.)
macro_rules! limit_requests {
    ($server:expr, $header_read_timeout:expr) => {{
        use standby_api::middleware::{SERVER_MAX_HEAD_BYTES, SERVER_MAX_HEADERS};
        let builder = $server.http_builder();
        builder
            .http1()
            .header_read_timeout($header_read_timeout)
            .max_headers(SERVER_MAX_HEADERS)
            .max_buf_size(SERVER_MAX_HEAD_BYTES);
        builder
            .http2()
            .max_header_list_size(u32::try_from(SERVER_MAX_HEAD_BYTES).unwrap_or(u32::MAX));
    }};
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init(settings.log_format);

    // Before anything is counted, so /metrics sees every event.
    standby_api::metrics::install();
    let store = standby_store::open(&settings.store)
        .await
        .with_context(|| format!("opening the store {}", settings.store.describe()))?;
    if let Some(path) = &settings.fleet {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading fleet file {}", path.display()))?;
        let fleet = FleetFile::parse(&text)
            .and_then(|f| f.resolve(Timestamp::now()))
            .with_context(|| format!("in {}", path.display()))?;
        let summary = store
            .import_fleet(&fleet)
            .await
            .context("importing the fleet file")?;
        store
            .refresh_statistics()
            .await
            .context("analyzing the imported fleet")?;
        tracing::info!(file = %path.display(), plans = summary.plans, "fleet file imported");
    }
    if settings.demo {
        // Seeding is atomic: of several nodes starting on one empty database, one loads it.
        let fleet = standby_fleet::demo::demo_fleet(Timestamp::now());
        let seeded = store
            .seed_fleet(&fleet)
            .await
            .context("loading the demo fleet")?;
        if seeded.is_some() {
            tracing::info!(
                plans = fleet.plans.len(),
                vms = fleet.objects.len(),
                "demo fleet loaded"
            );
        }
    }
    let created = standby_api::auth::bootstrap_admin(store.as_ref(), settings.admin.clone())
        .await
        .map_err(|e| anyhow::anyhow!("creating the first administrator: {}", e.error.message))?;
    if let Some((name, password)) = created {
        println!(
            "standby: created portal administrator '{name}' with password {password} (shown once; set STANDBY_ADMIN_USER/STANDBY_ADMIN_PASSWORD to choose)"
        );
    }

    // After the administrator: the first-user check must not count the demo's users.
    if settings.demo {
        // STANDBY_DEMO_PASSWORD gives every demo user one known password (for scripts and tests).
        let password = std::env::var("STANDBY_DEMO_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        let created = standby_api::users::add_demo_users(store.as_ref(), password)
            .await
            .context("creating the demo users")?;
        for (name, role, organization, generated) in created {
            match generated {
                Some(password) => println!(
                    "standby: demo user {name} ({role}, {organization}) password {password} (shown once)"
                ),
                None => println!("standby: demo user {name} ({role}, {organization})"),
            }
        }
    }
    // On SQLite (one node) jobs a previous process held are resumed at once; on PostgreSQL
    // other nodes may be running them, so they are taken over only when their lease runs out.
    let single_node = store.single_node();
    // The connectors a backup server can name (`backup_servers.connector`).
    let connectors = standby_engine::Registry::new()
        .with(
            standby_fleet::SIM_CONNECTOR,
            Arc::new(standby_engine::sim::SimConnector::new(
                store.sim_ledger(),
                settings.sim.clone(),
            )),
        )
        .with(
            standby_store::AGENT_CONNECTOR,
            Arc::new(standby_engine::agent::AgentConnector::new(
                store.agents(),
                settings.api.agent_offline_after,
            )),
        );
    let engine = standby_engine::Engine::start(
        store.clone(),
        settings.engine.clone(),
        connectors,
        single_node,
    )
    .await
    .context("starting the engine")?;
    let state =
        standby_api::AppState::new(store.clone(), settings.api.clone(), Some(engine.clone()))
            .await
            .map_err(|e| anyhow::anyhow!("preparing the API: {}", e.error.message))?;
    tokio::spawn(purge(
        store.clone(),
        settings.retention,
        settings.purge_interval,
    ));

    // Scheduled drills: every node runs the runner; each occurrence and each move is claimed once.
    tokio::spawn(standby_api::drills::runner::run(state.clone()));
    // Notifications: the outbox fanned out and delivered, at least once, from every node.
    tokio::spawn(standby_api::notify::dispatcher::run(state.clone()));

    let console = standby_console::router(&state);
    let app = standby_api::router_with(state, console)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    let stopped = tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: no new connections; requests in flight and VM steps finish");
        // Stop accepting and let requests in flight finish; at the same time stop the engine at
        // a safe point: VM steps in flight end and are recorded, the rest of each session
        // resumes on the next start (or on another node).
        shutdown.graceful_shutdown(Some(Duration::from_secs(30)));
        engine.shutdown(Duration::from_secs(60)).await
    });
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let listening = handle.clone();
    let database = settings.store.describe();
    tokio::spawn(async move {
        if let Some(address) = listening.listening().await {
            // Scripts and tests read this line to find a random port.
            println!("standby: listening on {scheme}://{address}");
            tracing::info!(%address, %database, scheme, "Standby is serving");
        }
    });
    match &settings.tls {
        None => {
            let mut server = axum_server::bind(settings.listen).handle(handle);
            limit_requests!(server, settings.header_read_timeout);
            server
                .serve(app)
                .await
                .with_context(|| format!("serving on {}", settings.listen))?;
        }
        Some((cert, key)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "loading the TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let mut server = axum_server::bind_rustls(settings.listen, config).handle(handle);
            limit_requests!(server, settings.header_read_timeout);
            server
                .serve(app)
                .await
                .with_context(|| format!("serving over TLS on {}", settings.listen))?;
        }
    }
    // The server only returns without an error once the signal has started the shutdown.
    match stopped.await {
        Ok(true) => tracing::info!("Standby stopped"),
        Ok(false) => tracing::warn!(
            "Standby stopped before every VM step finished; those sessions resume when their lease runs out"
        ),
        Err(error) => tracing::warn!(%error, "the shutdown task failed"),
    }
    store.close().await;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// The background purge (see `standby_store::retention`): every `interval` on every node, again
/// at once while a table had more than a batch past its retention; then the watched tables'
/// sizes go to the `standby_store_rows` gauge, so that a table that keeps growing is seen.
async fn purge(
    store: std::sync::Arc<dyn standby_store::Store>,
    retention: standby_store::retention::Retention,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            match store.purge_expired(Timestamp::now(), &retention).await {
                Ok(purged) => {
                    for (table, rows) in &purged.by_table {
                        metrics::counter!("standby_store_purged_rows_total", "table" => *table)
                            .increment(*rows);
                    }
                    if purged.total() > 0 {
                        tracing::debug!(rows = purged.total(), "purged records past retention");
                    }
                    if !purged.more_left() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "purging records past retention failed");
                    break;
                }
            }
        }
        match store.table_rows().await {
            Ok(tables) => {
                for (table, rows) in tables {
                    metrics::gauge!("standby_store_rows", "table" => table).set(rows as f64);
                }
            }
            Err(error) => tracing::warn!(%error, "counting the store's rows failed"),
        }
    }
}
