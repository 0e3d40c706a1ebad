//! Where `standby login` keeps its session: `$XDG_CONFIG_HOME/standby/credentials.json` (or
//! `~/.config/standby/...`), mode 0600, written whole and renamed into place.
//!
//! Refresh tokens rotate on every use and a reused one revokes its whole family, so two client
//! commands running at once must not both refresh: the access token is cached until shortly
//! before it expires, and a refresh happens under an exclusive lock on a sibling lock file, after
//! re-reading the file in case another process refreshed first.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ClientError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// The server's base URL as given to `login`, without `/api/v3`.
    pub url: String,
    pub user: String,
    pub refresh_token: String,
    pub access_token: String,
    /// Unix seconds at which the access token expires.
    pub access_expires_at: i64,
    /// A PEM file of extra trusted roots (a private CA or a self-signed server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// The directory holding the session file and its lock.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    dir: PathBuf,
}

impl CredentialStore {
    /// `$XDG_CONFIG_HOME/standby`, else `$HOME/.config/standby`.
    pub fn from_environment() -> Result<CredentialStore, ClientError> {
        let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(home) => PathBuf::from(home).join(".config"),
                None => {
                    return Err(ClientError::Local(
                        "neither XDG_CONFIG_HOME nor HOME is set; cannot find the config directory"
                            .into(),
                    ));
                }
            },
        };
        Ok(CredentialStore::at(base.join("standby")))
    }

    pub fn at(dir: PathBuf) -> CredentialStore {
        CredentialStore { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("credentials.json")
    }

    /// Reads the saved session; `NotLoggedIn` when there is none.
    pub fn load(&self) -> Result<Credentials, ClientError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NotLoggedIn(
                    "not logged in: run `standby login URL --user NAME` first".into(),
                ));
            }
            Err(error) => return Err(local(&path, error)),
        };
        serde_json::from_str(&text).map_err(|error| {
            ClientError::Local(format!(
                "{} is damaged ({error}); run `standby login` again",
                path.display()
            ))
        })
    }

    /// Writes the session to a temporary file created 0600 and renames it over the old one, so
    /// a crash leaves the old or the new file, never half of one, and never a readable one.
    pub fn save(&self, credentials: &Credentials) -> Result<PathBuf, ClientError> {
        self.create_dir()?;
        let path = self.path();
        let temporary = self
            .dir
            .join(format!(".credentials.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(credentials)
            .map_err(|e| ClientError::Local(format!("encoding the credentials: {e}")))?;
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temporary, &path)
        })();
        if let Err(error) = written {
            let _ = fs::remove_file(&temporary);
            return Err(local(&path, error));
        }
        Ok(path)
    }

    /// Removes the saved session; false when there was none.
    pub fn remove(&self) -> Result<bool, ClientError> {
        let path = self.path();
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(local(&path, error)),
        }
    }

    /// An exclusive lock, held while a refresh token is spent and its successor saved.
    pub fn lock_for_refresh(&self) -> Result<RefreshLock, ClientError> {
        self.create_dir()?;
        let path = self.dir.join("credentials.lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| local(&path, e))?;
        file.lock().map_err(|e| local(&path, e))?;
        Ok(RefreshLock { _file: file })
    }

    fn create_dir(&self) -> Result<(), ClientError> {
        fs::create_dir_all(&self.dir).map_err(|e| local(&self.dir, e))?;
        // The directory holds secrets too; keep it private whoever created it.
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| local(&self.dir, e))
    }
}

/// Released when dropped (closing the file releases the lock).
pub struct RefreshLock {
    _file: File,
}

fn local(path: &Path, error: std::io::Error) -> ClientError {
    ClientError::Local(format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_privately_and_reads_back() {
        let temp = tempfile::tempdir().unwrap();
        let store = CredentialStore::at(temp.path().join("standby"));
        assert!(matches!(store.load(), Err(ClientError::NotLoggedIn(_))));
        let credentials = Credentials {
            url: "http://127.0.0.1:1280".into(),
            user: "admin".into(),
            refresh_token: "r".into(),
            access_token: "a".into(),
            access_expires_at: 1,
            ca_cert: None,
        };
        let path = store.save(&credentials).unwrap();
        assert_eq!(path, temp.path().join("standby/credentials.json"));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&temp.path().join("standby")), 0o700);
        assert_eq!(store.load().unwrap().user, "admin");
        let _lock = store.lock_for_refresh().unwrap();
        fs::write(&path, "{not json").unwrap();
        assert!(matches!(store.load(), Err(ClientError::Local(_))));
        assert!(store.remove().unwrap());
        assert!(!store.remove().unwrap());
    }
}
