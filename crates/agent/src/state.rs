//! The state dir: the agent's credential (0600), the server it was enrolled as, the ledger.
//! Files are replaced whole (temp file, fsync, rename), so a crash leaves the old or the new.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AgentError, CREDENTIAL_FILE, SERVER_FILE};

/// The backup server this agent was enrolled as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerIdentity {
    pub backup_server_uid: Uuid,
    pub backup_server_name: String,
}

/// Creates the state dir (0700) if missing.
pub fn prepare(dir: &Path) -> Result<(), AgentError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| {
            AgentError::Io(format!(
                "{}: cannot create the state dir: {error}",
                dir.display()
            ))
        })
}

/// The stored credential and identity; `None` when the agent is not enrolled.
pub fn load(dir: &Path) -> Result<Option<(String, ServerIdentity)>, AgentError> {
    let credential_path = dir.join(CREDENTIAL_FILE);
    let credential = match std::fs::read_to_string(&credential_path) {
        Ok(text) => text.trim().to_owned(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(AgentError::Io(format!(
                "{}: {error}",
                credential_path.display()
            )));
        }
    };
    if credential.is_empty() {
        return Err(AgentError::Io(format!(
            "{} is empty: remove it and enroll again with --enroll TOKEN",
            credential_path.display()
        )));
    }
    let server_path = dir.join(SERVER_FILE);
    let text = std::fs::read_to_string(&server_path).map_err(|error| {
        AgentError::Io(format!(
            "{}: {error} (the state dir has a credential but not the server it was enrolled as; \
             remove {} and enroll again)",
            server_path.display(),
            credential_path.display()
        ))
    })?;
    let identity = serde_json::from_str(&text)
        .map_err(|error| AgentError::Io(format!("{}: {error}", server_path.display())))?;
    Ok(Some((credential, identity)))
}

/// Keeps what enrollment gave: the identity first, the credential last (its presence is what
/// says "enrolled").
pub fn save(dir: &Path, credential: &str, identity: &ServerIdentity) -> Result<(), AgentError> {
    let text = serde_json::to_string_pretty(identity)
        .map_err(|error| AgentError::Io(format!("writing {SERVER_FILE}: {error}")))?;
    write_private(&dir.join(SERVER_FILE), text.as_bytes())?;
    write_private(
        &dir.join(CREDENTIAL_FILE),
        format!("{credential}\n").as_bytes(),
    )
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let io = |error: std::io::Error| AgentError::Io(format!("{}: {error}", path.display()));
    let temp = temp_path(path);
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io)?;
    // The mode given at creation passes through the umask; 0600 is meant exactly.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temp, path).map_err(io)?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// This host's name: `/etc/hostname`, else `$HOSTNAME`, else empty.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = dir.path().join("state");
        prepare(&state).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&state).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o700));
        assert!(load(&state).unwrap_or_else(|e| panic!("{e}")).is_none());
        let identity = ServerIdentity {
            backup_server_uid: Uuid::from_u128(7),
            backup_server_name: "dr-1".into(),
        };
        save(&state, "sba_secret", &identity).unwrap_or_else(|e| panic!("{e}"));
        let mode =
            std::fs::metadata(state.join(CREDENTIAL_FILE)).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        let loaded = load(&state).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded, Some(("sba_secret".to_owned(), identity)));
    }
}
