//! `standby-bench-ceiling --listen ADDR --bytes N`: an axum server whose one route answers every
//! GET with the same pre-serialized JSON body of N bytes. Standby's figures are divided by this
//! one's, measured with the same load generator and settings: the ratio says how much of the
//! machine's HTTP ceiling Standby's own work leaves.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;

fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:1290".parse()?;
    let mut bytes = 60_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value.parse().context("--listen ADDR")?,
            "--bytes" => bytes = value.parse().context("--bytes N")?,
            other => bail!("unknown flag {other}"),
        }
    }
    // A JSON document of exactly `bytes` bytes: {"data":"xxxx..."}.
    let filler = bytes.saturating_sub(r#"{"data":""}"#.len());
    let body = Bytes::from(format!(r#"{{"data":"{}"}}"#, "x".repeat(filler)));
    let app = Router::new().route(
        "/",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    // The same runtime shape as `standby serve`: tokio's multi-threaded default.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("ceiling: listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}
