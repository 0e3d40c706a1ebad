//! Throttling (CONTRACT.md §11): per client address and per user, a cap on concurrent requests
//! and on requests per window; 429 with `retryAfter` and `Retry-After`. Every request under
//! `/api/v3` counts toward its address's limit, unknown routes and `/token` included.
//!
//! Request counters live in this process: with several nodes, each enforces its own share.
//! Login attempts are different: they are counted in the store, before the password is checked,
//! so at most the limit is ever evaluated, however many guesses arrive at once and on whichever
//! node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use standby_model::Timestamp;
use standby_store::{AuthStore, LoginAttempt, StoreError};

use crate::AppState;
use crate::error::ApiError;
use crate::identity::authenticate;
use crate::secrets::token_hash;

#[derive(Debug, Clone)]
pub struct ThrottleSettings {
    /// Requests one user may have in flight; an address may have twice as many.
    pub user_concurrent: usize,
    /// Requests one user may make per window; an address may make twice as many.
    pub user_per_window: u32,
    pub window: Duration,
    /// Failed logins per user name per login window; an address may fail four times as often.
    pub login_failures: u32,
    pub login_window: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            user_concurrent: 32,
            user_per_window: 1200,
            window: Duration::from_secs(60),
            login_failures: 5,
            login_window: Duration::from_secs(300),
        }
    }
}

/// Fixed windows and in-flight counts by key.
#[derive(Default)]
pub struct Throttle {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
    in_flight: Mutex<HashMap<String, usize>>,
    pub settings: ThrottleSettings,
}

/// Holds one in-flight slot; releases it when dropped.
pub struct Slot {
    throttle: Arc<Throttle>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Ok(mut in_flight) = self.throttle.in_flight.lock() else {
            return;
        };
        if let Some(count) = in_flight.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

fn throttled(retry_after: u64, message: &str) -> ApiError {
    metrics::counter!("standby_throttled_requests_total").increment(1);
    let mut error = ApiError::too_many(message);
    error.error.retry_after = Some(retry_after.max(1));
    error
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Self {
        Throttle {
            settings,
            ..Throttle::default()
        }
    }

    /// Counts one request against the key's window, or says in how many seconds the window
    /// resets if it is used up.
    fn window(&self, key: &str, limit: u32, window: Duration) -> Option<u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().ok()?;
        if windows.len() > 100_000 {
            // Forget finished windows so a flood of addresses cannot grow this without bound.
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1.saturating_add(1) > limit {
            return Some(window.saturating_sub(now.duration_since(entry.0)).as_secs() + 1);
        }
        entry.1 += 1;
        None
    }

    fn enter(self: &Arc<Self>, key: String, limit: usize) -> Result<Slot, ApiError> {
        let mut in_flight = self
            .in_flight
            .lock()
            .map_err(|_| ApiError::internal("throttle lock poisoned"))?;
        let count = in_flight.entry(key.clone()).or_insert(0);
        if *count >= limit {
            return Err(throttled(1, "Too many concurrent requests; retry shortly."));
        }
        *count += 1;
        Ok(Slot {
            throttle: self.clone(),
            key,
        })
    }

    /// Admits one request from `address` (and, once known, `user`), or says how long to wait.
    pub fn admit(self: &Arc<Self>, scope: &str, key: &str, factor: u32) -> Result<Slot, ApiError> {
        let settings = &self.settings;
        let window_key = format!("{scope}:{key}");
        if let Some(retry) = self.window(
            &window_key,
            settings.user_per_window.saturating_mul(factor),
            settings.window,
        ) {
            return Err(throttled(
                retry,
                "Too many requests; retry after the time given.",
            ));
        }
        self.enter(
            window_key,
            settings.user_concurrent.saturating_mul(factor as usize),
        )
    }

    /// One request from a client address: an address may do twice what one user may.
    pub fn admit_address(self: &Arc<Self>, address: &str) -> Result<Slot, ApiError> {
        self.admit("address", address, 2)
    }

    /// One request by an authenticated user, on whichever surface (API or console).
    pub fn admit_user(self: &Arc<Self>, user: uuid::Uuid) -> Result<Slot, ApiError> {
        self.admit("user", &user.to_string(), 1)
    }

    /// Counts a login attempt against its user name (`login_failures` per login window) and its
    /// address (four times as many) before the password is checked; `Throttled` when either is
    /// used up. Give the attempt back with [`LoginReservation::succeeded`]: only failures count.
    pub async fn reserve_login(
        &self,
        store: &dyn AuthStore,
        user: &str,
        address: &str,
    ) -> Result<LoginGate, StoreError> {
        let settings = &self.settings;
        let window = i64::try_from(settings.login_window.as_secs())
            .unwrap_or(i64::MAX)
            .max(1);
        let now = Timestamp::now();
        let limits = [
            (
                format!("user:{}", token_hash(user)),
                settings.login_failures,
            ),
            (
                format!("address:{}", token_hash(address)),
                settings.login_failures.saturating_mul(4),
            ),
        ];
        let mut reservation = LoginReservation { keys: Vec::new() };
        for (key, limit) in limits {
            match store
                .reserve_login_attempt(&key, limit, window, now)
                .await?
            {
                LoginAttempt::Admitted { window_ends } => {
                    reservation.keys.push((key, window_ends));
                }
                LoginAttempt::Blocked {
                    retry_after_seconds,
                } => {
                    // The user name's attempt is not spent when the address refuses it.
                    reservation.give_back(store).await;
                    return Ok(LoginGate::Throttled(retry_after_seconds));
                }
            }
        }
        Ok(LoginGate::Open(reservation))
    }
}

pub enum LoginGate {
    /// The attempt is counted: check the password.
    Open(LoginReservation),
    /// Wait this many seconds.
    Throttled(u64),
}

/// A counted login attempt.
#[must_use]
pub struct LoginReservation {
    /// Each key counted, with the end of the window it was counted in.
    keys: Vec<(String, Timestamp)>,
}

impl LoginReservation {
    /// The password was right: the attempt does not count against anyone.
    pub async fn succeeded(self, store: &dyn AuthStore) {
        self.give_back(store).await;
    }

    async fn give_back(&self, store: &dyn AuthStore) {
        for (key, window_ends) in &self.keys {
            if let Err(error) = store.refund_login_attempt(key, *window_ends).await {
                tracing::warn!(%error, "could not give back a login attempt");
            }
        }
    }
}

/// Throttles every authenticated route: by address first, then by the authenticated user.
pub async fn throttle(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let address = crate::audit::address_of(request.extensions());
    let _by_address = match state.throttle.admit_address(&address) {
        Ok(slot) => slot,
        Err(error) => return error.into_response(),
    };
    let principal = match authenticate(&state, request.headers()).await {
        Ok(principal) => principal,
        // Unauthenticated requests are answered by the handlers' own 401, still counted by address.
        Err(_) => return next.run(request).await,
    };
    let _by_user = match state.throttle.admit_user(principal.user_uid) {
        Ok(slot) => slot,
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(principal);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_concurrency_limit_and_reset() {
        let throttle = Arc::new(Throttle::new(ThrottleSettings {
            user_concurrent: 2,
            user_per_window: 3,
            window: Duration::from_millis(200),
            login_failures: 2,
            login_window: Duration::from_millis(200),
        }));
        let a = throttle.admit("user", "u", 1).unwrap();
        let b = throttle.admit("user", "u", 1).unwrap();
        let error = throttle.admit("user", "u", 1).err().unwrap();
        assert_eq!(
            (error.status, error.error.retry_after),
            (429, Some(1)),
            "two in flight"
        );
        drop((a, b));
        let error = throttle.admit("user", "u", 1).err().unwrap();
        assert_eq!(error.status, 429, "the window's 3 requests are used");
        assert!(
            throttle.admit("user", "other", 1).is_ok(),
            "other users are not affected"
        );
        std::thread::sleep(Duration::from_millis(220));
        assert!(throttle.admit("user", "u", 1).is_ok(), "a new window");
    }
}
