//! One guest on the host: its runtime directory, named after the operation that launched it
//! (`op-<digest>`: the record `launch.json`, the overlay `disk.qcow2`, `qemu.pid`, `qmp.sock`,
//! `serial.log`, `qemu.log`), how it is launched, found alive, and stopped.
//!
//! The directory appears whole (written as `op-<digest>.new`, then renamed) with its record, and
//! the record is written before the overlay and the process exist: whatever the agent finds
//! after a crash, the record says which operation it belongs to.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use standby_model::Timestamp;
use uuid::Uuid;

use super::qmp::Qmp;
use super::replica::{Boot, DiskInterface, Probe, ProductionNetwork, Spec};

pub const RECORD_FILE: &str = "launch.json";
pub const OVERLAY_FILE: &str = "disk.qcow2";
pub const PID_FILE: &str = "qemu.pid";
pub const QMP_FILE: &str = "qmp.sock";
pub const SERIAL_FILE: &str = "serial.log";
pub const QEMU_LOG: &str = "qemu.log";
/// The guest agent's socket (with a `guest-agent` probe).
pub const GUEST_AGENT_FILE: &str = "qga.sock";
/// Every guest's `-name` starts with this, so the sweep can find them among the host's processes.
pub const NAME_PREFIX: &str = "standby-op-";
const DIR_PREFIX: &str = "op-";
const REMOVING: &str = "removing";
/// The longest runtime dir name plus `/qmp.sock`.
pub const DIR_SUFFIX_LEN: usize = 3 + 16 + 1 + 8;
/// A unix socket's path is at most this long (`sun_path`, with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;
const QUIT_WAIT: Duration = Duration::from_secs(10);

/// What `launch.json` records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Launch {
    pub operation_id: String,
    pub vm_uid: Uuid,
    pub plan: String,
    pub vm: String,
    /// The restore point's file (absolute) and creation time (wire form).
    pub point_file: PathBuf,
    pub point_created: String,
    pub test: bool,
    /// The loopback port forwarded to the guest's probe port (0: none).
    pub forward_port: u16,
    /// How many times a QEMU process was started for this operation (1 unless a dead guest was
    /// relaunched on its overlay after an agent restart).
    pub launches: u32,
    /// When the latest of them was started (wire form): the probe's timeout counts from it.
    pub launched_at: String,
    /// Set before a boot that failed or was cancelled is discarded: after a crash in the middle
    /// of the discard, the restarted agent finishes it and ends the operation the same way
    /// instead of booting the guest again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned: Option<Abandoned>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Abandoned {
    pub cancelled: bool,
    pub detail: String,
}

/// The guest's runtime directory.
#[derive(Debug, Clone)]
pub struct GuestDir {
    pub path: PathBuf,
    pub name: String,
}

/// `op-` and 16 hex digits of the operation id's SHA-256: operation ids hold `/` and are too long
/// for a socket path.
pub fn dir_name(operation_id: &str) -> String {
    let digest = Sha256::digest(operation_id.as_bytes());
    let hex: String = digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{DIR_PREFIX}{hex}")
}

impl GuestDir {
    pub fn of(runtime_dir: &Path, operation_id: &str) -> GuestDir {
        let name = dir_name(operation_id);
        GuestDir {
            path: runtime_dir.join(&name),
            name,
        }
    }

    /// The QEMU `-name` (and how `/proc` shows it).
    pub fn guest_name(&self) -> String {
        format!("{NAME_PREFIX}{}", self.name.trim_start_matches(DIR_PREFIX))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    pub fn record(&self) -> Result<Launch, String> {
        let path = self.file(RECORD_FILE);
        let text = std::fs::read(&path)
            .map_err(|error| format!("{}: cannot read: {error}", path.display()))?;
        serde_json::from_slice(&text)
            .map_err(|error| format!("{}: unreadable: {error}", path.display()))
    }

    /// Writes the record (replacing it atomically).
    pub fn write_record(&self, launch: &Launch) -> Result<(), String> {
        write_record_in(&self.path, launch)
    }

    /// Creates the directory with its record in one step (a rename).
    pub fn create(&self, launch: &Launch) -> Result<(), String> {
        let staging = self.path.with_extension("new");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .map_err(|error| format!("{}: cannot remove: {error}", staging.display()))?;
        }
        std::fs::create_dir_all(&staging)
            .map_err(|error| format!("{}: cannot create: {error}", staging.display()))?;
        write_record_in(&staging, launch)?;
        std::fs::rename(&staging, &self.path)
            .map_err(|error| format!("{}: cannot create: {error}", self.path.display()))
    }

    /// Creates the overlay on the restore point (written under another name, then renamed, so a
    /// crash never leaves half an overlay). The point itself is only ever read.
    pub async fn create_overlay(&self, qemu_img: &Path, point: &Path) -> Result<(), String> {
        let staging = self.file("disk.qcow2.new");
        let output = tokio::process::Command::new(qemu_img)
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(point)
            .arg(&staging)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|error| format!("cannot run {}: {error}", qemu_img.display()))?;
        if !output.status.success() {
            return Err(format!(
                "qemu-img create on {}: {}",
                point.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        std::fs::rename(&staging, self.file(OVERLAY_FILE))
            .map_err(|error| format!("{}: cannot create: {error}", self.path.display()))
    }

    pub fn has_overlay(&self) -> bool {
        self.file(OVERLAY_FILE).is_file()
    }

    /// The guest's QEMU process, if it runs: the pidfile's pid when that process carries the
    /// guest's name, else any process that does (a crash before the pidfile was written).
    pub fn pid(&self) -> Option<i32> {
        let name = self.guest_name();
        let from_file = std::fs::read_to_string(self.file(PID_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
            .filter(|pid| process_named(*pid, &name));
        from_file.or_else(|| {
            guest_processes()
                .into_iter()
                .find_map(|(pid, found)| (found == name).then_some(pid))
        })
    }

    /// The last `lines` lines of the serial console, for a failure's detail.
    pub fn console_tail(&self, lines: usize) -> String {
        tail(&self.file(SERIAL_FILE), lines)
    }

    /// Removes the directory: renamed first (`op-<digest>.removing`, atomic), so that a crash
    /// halfway never leaves a directory that looks like a guest without its record, then
    /// deleted (off the async runtime: an overlay can be large). The sweep finishes what a crash
    /// interrupted.
    pub async fn remove(&self) -> Result<(), String> {
        let doomed = self.path.with_extension(REMOVING);
        match std::fs::rename(&self.path, &doomed) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(format!("{}: cannot remove: {error}", self.path.display()));
            }
        }
        delete_tree(doomed).await
    }
}

/// Deletes a renamed-away directory, retried: QEMU may still unlink its pidfile and socket as
/// its process ends, and a file gone between listing and unlinking stops `remove_dir_all`.
async fn delete_tree(path: PathBuf) -> Result<(), String> {
    let mut last = None;
    for _ in 0..10 {
        let target = path.clone();
        match tokio::task::spawn_blocking(move || std::fs::remove_dir_all(target)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(_)) if !path.exists() => return Ok(()),
            Ok(Err(error)) => last = Some(error.to_string()),
            Err(error) => last = Some(error.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "{}: cannot remove: {}",
        path.display(),
        last.unwrap_or_default()
    ))
}

/// Leftovers of a crash in the runtime dir: staging directories of a guest being created (a
/// record, never an overlay or a process) and directories being removed (their guest stopped).
/// Deleted, and named in the log.
pub async fn finish_interrupted(runtime_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(runtime_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let staging = name.ends_with(".new") || name.ends_with(&format!(".{REMOVING}"));
        if name.starts_with(DIR_PREFIX) && staging {
            match delete_tree(entry.path()).await {
                Ok(()) => {
                    tracing::info!(dir = %entry.path().display(), "removed what a crash left half made or half removed")
                }
                Err(problem) => tracing::warn!("{problem}"),
            }
        }
    }
}

fn write_record_in(dir: &Path, launch: &Launch) -> Result<(), String> {
    let path = dir.join(RECORD_FILE);
    let staging = dir.join("launch.json.new");
    let text = serde_json::to_vec_pretty(launch)
        .map_err(|error| format!("{}: cannot write: {error}", path.display()))?;
    std::fs::write(&staging, text)
        .and_then(|()| std::fs::File::open(&staging)?.sync_all())
        .and_then(|()| std::fs::rename(&staging, &path))
        .map_err(|error| format!("{}: cannot write: {error}", path.display()))
}

fn tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .collect();
    kept[kept.len().saturating_sub(lines)..].join(" | ")
}

/// Whether process `pid` runs with `name` as an argument.
fn process_named(pid: i32, name: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            cmdline
                .split(|byte| *byte == 0)
                .any(|arg| arg == name.as_bytes())
        })
        .unwrap_or(false)
}

/// Every process on the host with a `standby-op-...` argument, with that name.
pub fn guest_processes() -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let name = cmdline
            .split(|byte| *byte == 0)
            .filter_map(|arg| std::str::from_utf8(arg).ok())
            .find(|arg| arg.starts_with(NAME_PREFIX));
        if let Some(name) = name {
            found.push((pid, name.to_owned()));
        }
    }
    found
}

/// The runtime directories under `runtime_dir` (not the staging ones).
pub fn guest_dirs(runtime_dir: &Path) -> Vec<GuestDir> {
    let Ok(entries) = std::fs::read_dir(runtime_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<GuestDir> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            (name.starts_with(DIR_PREFIX) && !name.contains('.') && entry.path().is_dir()).then(
                || GuestDir {
                    path: entry.path(),
                    name,
                },
            )
        })
        .collect();
    dirs.sort_by(|a, b| a.name.cmp(&b.name));
    dirs
}

/// A loopback port nothing listens on now (QEMU binds it a moment later; a lost race makes
/// QEMU exit, and the launch is tried again on another port).
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("no free loopback port: {error}"))
}

/// How QEMU runs on this host.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub qemu_binary: PathBuf,
    pub kvm: bool,
}

/// QEMU's option syntax doubles a comma inside a value.
fn escaped(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

impl Launcher {
    /// The QEMU command line for the guest in `dir` (its overlay must exist).
    pub fn arguments(&self, dir: &GuestDir, spec: &Spec, launch: &Launch) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-name".into(),
            dir.guest_name(),
            "-daemonize".into(),
            "-pidfile".into(),
            dir.file(PID_FILE).display().to_string(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", escaped(&dir.file(QMP_FILE))),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            "-accel".into(),
            if self.kvm { "kvm" } else { "tcg" }.into(),
        ];
        if self.kvm {
            args.extend(["-cpu".into(), "host".into()]);
        }
        args.extend([
            "-smp".into(),
            spec.cpus.to_string(),
            "-m".into(),
            spec.memory_mib.to_string(),
        ]);
        if let Boot::Kernel {
            kernel,
            initrd,
            append,
        } = &spec.boot
        {
            args.extend(["-kernel".into(), kernel.display().to_string()]);
            if let Some(initrd) = initrd {
                args.extend(["-initrd".into(), initrd.display().to_string()]);
            }
            let mut append = append.trim().to_owned();
            // TCG's slow timer calibration makes a stock kernel panic without this.
            if !self.kvm
                && !append
                    .split_whitespace()
                    .any(|word| word == "no_timer_check")
            {
                append.push_str(" no_timer_check");
            }
            args.extend(["-append".into(), append.trim().to_owned()]);
        }
        let interface = match spec.disk_interface {
            DiskInterface::Virtio => "virtio",
            DiskInterface::Ide => "ide",
        };
        args.extend([
            "-drive".into(),
            format!(
                "file={},if={interface},format=qcow2",
                escaped(&dir.file(OVERLAY_FILE))
            ),
        ]);
        let forward = match (&spec.probe, launch.forward_port) {
            (Probe::Tcp { port, .. }, forward) if forward != 0 => {
                format!(",hostfwd=tcp:127.0.0.1:{forward}-:{port}")
            }
            _ => String::new(),
        };
        let (netdev, mac) = if launch.test {
            // No route anywhere: slirp's restrict drops every packet the guest sends out; only
            // the loopback-only forward reaches it.
            (format!("user,id=net0,restrict=on{forward}"), None)
        } else {
            match &spec.production {
                ProductionNetwork::User { mac } => (format!("user,id=net0{forward}"), mac.clone()),
                ProductionNetwork::Bridge { bridge, mac } => {
                    (format!("bridge,id=net0,br={bridge}"), mac.clone())
                }
            }
        };
        let device = match mac {
            Some(mac) => format!("virtio-net-pci,netdev=net0,mac={mac}"),
            None => "virtio-net-pci,netdev=net0".to_owned(),
        };
        args.extend(["-netdev".into(), netdev, "-device".into(), device]);
        args.extend([
            "-serial".into(),
            format!("file:{}", dir.file(SERIAL_FILE).display()),
        ]);
        if matches!(spec.probe, Probe::GuestAgent) {
            args.extend([
                "-chardev".into(),
                format!(
                    "socket,id=qga0,path={},server=on,wait=off",
                    escaped(&dir.file(GUEST_AGENT_FILE))
                ),
                "-device".into(),
                "virtio-serial-pci".into(),
                "-device".into(),
                "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0".into(),
            ]);
        }
        args
    }

    /// Starts the guest and returns once QEMU has daemonized (its process then runs on its
    /// own: the agent's death does not take it along).
    pub async fn start(&self, dir: &GuestDir, spec: &Spec, launch: &Launch) -> Result<(), String> {
        let log = std::fs::File::create(dir.file(QEMU_LOG))
            .map_err(|error| format!("{}: {error}", dir.file(QEMU_LOG).display()))?;
        // A stale pidfile from a dead launch must not name someone else's process.
        let _ = std::fs::remove_file(dir.file(PID_FILE));
        let _ = std::fs::remove_file(dir.file(QMP_FILE));
        let _ = std::fs::remove_file(dir.file(GUEST_AGENT_FILE));
        let status = tokio::process::Command::new(&self.qemu_binary)
            .args(self.arguments(dir, spec, launch))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .await
            .map_err(|error| format!("cannot run {}: {error}", self.qemu_binary.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} exited with {status}: {}",
                self.qemu_binary.display(),
                tail(&dir.file(QEMU_LOG), 5)
            ))
        }
    }
}

/// How a guest was stopped.
pub async fn stop(dir: &GuestDir, graceful: Option<Duration>) -> Result<String, String> {
    let Some(pid) = dir.pid() else {
        return Ok("it was not running".to_owned());
    };
    let started = Instant::now();
    if let Some(timeout) = graceful {
        let powerdown = match Qmp::connect(&dir.file(QMP_FILE)).await {
            Ok(mut qmp) => qmp.execute("system_powerdown").await.map(|_| ()),
            Err(problem) => Err(problem),
        };
        match powerdown {
            Ok(()) => {
                if wait_gone(pid, timeout).await {
                    return Ok(format!(
                        "the guest shut down in {:.1} s",
                        started.elapsed().as_secs_f64()
                    ));
                }
            }
            Err(problem) => {
                tracing::warn!(guest = %dir.guest_name(), "system_powerdown: {problem}")
            }
        }
    }
    if let Ok(mut qmp) = Qmp::connect(&dir.file(QMP_FILE)).await {
        // `quit` may close the socket before it answers.
        let _ = qmp.execute("quit").await;
        if wait_gone(pid, QUIT_WAIT).await {
            let how = if graceful.is_some() {
                "the guest did not shut down in time; QEMU quit"
            } else {
                "QEMU quit"
            };
            return Ok(format!(
                "{how} after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
    }
    // Only the guest's own process: the pid must still carry its name (not reused by now).
    if dir.pid() == Some(pid) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).ok_or("not a pid")?,
            rustix::process::Signal::KILL,
        );
    }
    if wait_gone(pid, QUIT_WAIT).await {
        Ok(format!(
            "QEMU (pid {pid}) did not answer and was killed after {:.1} s",
            started.elapsed().as_secs_f64()
        ))
    } else {
        Err(format!(
            "QEMU (pid {pid}) does not stop, even after SIGKILL"
        ))
    }
}

/// Waits until process `pid` has exited (gone, or a zombie: its exit work, unlinking the
/// pidfile and the socket, is done).
async fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !process_alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub fn wire_now() -> String {
    Timestamp::now().to_wire()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_are_short_stable_and_distinct() {
        let a =
            dir_name("11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222222");
        assert_eq!(
            a,
            dir_name("11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222222")
        );
        assert_ne!(
            a,
            dir_name("11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222223")
        );
        assert_eq!(a.len() + "/qmp.sock".len(), DIR_SUFFIX_LEN);
        let dir = GuestDir::of(Path::new("/run"), "x");
        assert!(dir.guest_name().starts_with(NAME_PREFIX));
        assert_eq!(dir.guest_name().len(), NAME_PREFIX.len() + 16);
    }

    #[test]
    fn commas_in_paths_are_doubled_for_qemu() {
        assert_eq!(escaped(Path::new("/a,b/c")), "/a,,b/c");
    }
}
