//! Secrets: opaque random tokens (stored only as SHA-256), API keys, generated passwords and
//! argon2 password hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use standby_model::Timestamp;
use uuid::Uuid;

use crate::error::ApiError;

pub fn token_hash(token: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// A fresh opaque token: 32 random bytes, base64url.
pub fn new_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A new API key for a user: the key itself (shown once) and the record that stores its hash.
pub fn new_api_key(
    user: Uuid,
    description: &str,
    read_only: bool,
) -> Result<(String, standby_store::ApiKeyRecord), ApiError> {
    let key = format!("sbk_{}", new_token()?);
    let record = standby_store::ApiKeyRecord {
        hash: token_hash(&key),
        user_uid: user,
        description: description.to_owned(),
        read_only,
        created_at: Timestamp::now(),
    };
    Ok((key, record))
}

/// A random password for generated accounts (24 characters, base64url).
pub fn generate_password() -> Result<String, ApiError> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Argon2id with the crate's defaults (about 30 ms here), off the async threads.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::internal(format!("argon2: {e}")))
}

pub(crate) async fn verify_password(password: String, hash: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .map_err(ApiError::internal)
}
