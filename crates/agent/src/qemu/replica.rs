//! A VM's replica directory: `vm.toml` (how to boot it) and its restore points, read-only qcow2
//! files in a chain (each backed by the previous one) listed oldest first in `points.toml` with
//! their creation times. The spec is checked when the agent starts; the points are read again
//! at every use, since replication adds them while the agent runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use standby_model::Timestamp;

pub const SPEC_FILE: &str = "vm.toml";
pub const POINTS_FILE: &str = "points.toml";
const MAX_CPUS: u32 = 64;
const MAX_MEMORY_MIB: u32 = 1 << 20;
const MAX_TIMEOUT_SECONDS: u64 = 86_400;
const DEFAULT_PROBE_TIMEOUT_SECONDS: u64 = 300;
const DEFAULT_SHUTDOWN_SECONDS: u64 = 60;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    #[serde(default = "one")]
    cpus: u32,
    memory_mib: u32,
    boot: BootFile,
    #[serde(default)]
    disk: Option<DiskFile>,
    networks: NetworksFile,
    probe: ProbeFile,
    #[serde(default)]
    timeouts: Option<TimeoutsFile>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BootFile {
    #[serde(default)]
    kernel: Option<PathBuf>,
    #[serde(default)]
    initrd: Option<PathBuf>,
    #[serde(default)]
    append: String,
    /// Boot from the restore point's disk (its boot loader) instead of a kernel.
    #[serde(default)]
    disk: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskFile {
    #[serde(default)]
    interface: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworksFile {
    production: ProductionFile,
    #[serde(default)]
    test: Option<TestNetworkFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductionFile {
    kind: String,
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    mac: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestNetworkFile {
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeFile {
    kind: String,
    #[serde(default)]
    port: Option<u16>,
    /// For a production network the host cannot forward to (a bridge): the guest's address.
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    send: Option<String>,
    #[serde(default)]
    marker: Option<String>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutsFile {
    #[serde(default)]
    shutdown_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointsFile {
    #[serde(default)]
    points: Vec<PointFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointFile {
    file: PathBuf,
    created: String,
}

/// How a replica boots, checked.
#[derive(Debug, Clone)]
pub struct Spec {
    pub dir: PathBuf,
    pub cpus: u32,
    pub memory_mib: u32,
    pub boot: Boot,
    pub disk_interface: DiskInterface,
    pub production: ProductionNetwork,
    pub probe: Probe,
    pub probe_timeout: Duration,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum Boot {
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        append: String,
    },
    Disk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskInterface {
    Virtio,
    Ide,
}

#[derive(Debug, Clone)]
pub enum ProductionNetwork {
    /// QEMU user networking (NAT through the host).
    User { mac: Option<String> },
    /// A tap on a host bridge (`-netdev bridge`, through qemu-bridge-helper).
    Bridge { bridge: String, mac: Option<String> },
}

#[derive(Debug, Clone)]
pub enum Probe {
    /// Ready once a connection to the guest's port yields a byte (after `send`, if given).
    Tcp {
        port: u16,
        address: Option<std::net::IpAddr>,
        send: Option<String>,
    },
    /// Ready once the serial console prints `marker`.
    Serial { marker: String },
    /// Ready once the QEMU guest agent in the guest answers `guest-ping` (a virtio-serial port
    /// named `org.qemu.guest_agent.0`, as `qemu-ga` expects).
    GuestAgent,
}

/// A restore point on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub created: Timestamp,
    /// Absolute.
    pub file: PathBuf,
}

impl Spec {
    /// Reads and checks `DIR/vm.toml`; every message names the file.
    pub fn load(dir: &Path) -> Result<Spec, String> {
        let path = dir.join(SPEC_FILE);
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("{shown}: cannot read the replica's spec: {error}"))?;
        let raw: SpecFile =
            toml::from_str(&text).map_err(|error| format!("{shown}: {}", error.message()))?;
        Spec::check(dir, raw).map_err(|message| format!("{shown}: {message}"))
    }

    fn check(dir: &Path, raw: SpecFile) -> Result<Spec, String> {
        if !(1..=MAX_CPUS).contains(&raw.cpus) {
            return Err(format!(
                "cpus = {} is not between 1 and {MAX_CPUS}",
                raw.cpus
            ));
        }
        if !(16..=MAX_MEMORY_MIB).contains(&raw.memory_mib) {
            return Err(format!(
                "memory_mib = {} is not between 16 and {MAX_MEMORY_MIB}",
                raw.memory_mib
            ));
        }
        let within = |file: &Path| -> Result<PathBuf, String> {
            let full = dir.join(file);
            if full.to_str().is_none() {
                return Err(format!(
                    "{}: not a UTF-8 path (QEMU's options need one)",
                    full.display()
                ));
            }
            if full.is_file() {
                Ok(full)
            } else {
                Err(format!("{}: no such file", full.display()))
            }
        };
        let boot = match (raw.boot.disk, raw.boot.kernel) {
            (true, None) => {
                if raw.boot.initrd.is_some() || !raw.boot.append.is_empty() {
                    return Err("[boot] disk = true takes no initrd or append".to_owned());
                }
                Boot::Disk
            }
            (false, Some(kernel)) => Boot::Kernel {
                kernel: within(&kernel).map_err(|message| format!("[boot] kernel: {message}"))?,
                initrd: raw
                    .boot
                    .initrd
                    .map(|initrd| within(&initrd))
                    .transpose()
                    .map_err(|message| format!("[boot] initrd: {message}"))?,
                append: raw.boot.append,
            },
            (true, Some(_)) => {
                return Err("[boot]: give kernel = \"...\" or disk = true, not both".to_owned());
            }
            (false, None) => {
                return Err(
                    "[boot]: give kernel = \"FILE\" (with initrd and append) or disk = true"
                        .to_owned(),
                );
            }
        };
        let disk_interface = match raw.disk.and_then(|disk| disk.interface).as_deref() {
            None | Some("virtio") => DiskInterface::Virtio,
            Some("ide") => DiskInterface::Ide,
            Some(other) => {
                return Err(format!(
                    "[disk] interface = \"{other}\" is not virtio or ide"
                ));
            }
        };
        let production = match raw.networks.production.kind.as_str() {
            "user" => {
                if raw.networks.production.bridge.is_some() {
                    return Err("[networks.production] bridge is only for kind = \"bridge\"".into());
                }
                ProductionNetwork::User {
                    mac: raw.networks.production.mac,
                }
            }
            "bridge" => {
                let bridge =
                    raw.networks.production.bridge.ok_or(
                        "[networks.production] kind = \"bridge\" needs bridge = \"BRIDGE\"",
                    )?;
                // A Linux interface name; anything else would also break QEMU's option syntax.
                let valid = (1..=15).contains(&bridge.len())
                    && bridge
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !valid {
                    return Err(format!(
                        "[networks.production] bridge = \"{bridge}\" is not an interface name \
                         (1 to 15 of A-Z a-z 0-9 - _ .)"
                    ));
                }
                ProductionNetwork::Bridge {
                    bridge,
                    mac: raw.networks.production.mac,
                }
            }
            other => {
                return Err(format!(
                    "[networks.production] kind = \"{other}\" is not user or bridge"
                ));
            }
        };
        if let Some(mac) = match &production {
            ProductionNetwork::User { mac } | ProductionNetwork::Bridge { mac, .. } => mac,
        } && !is_mac(mac)
        {
            return Err(format!(
                "[networks.production] mac = \"{mac}\" is not a MAC address"
            ));
        }
        if let Some(test) = raw.networks.test
            && test.kind != "isolated"
        {
            return Err(format!(
                "[networks.test] kind = \"{}\": a test failover is always isolated (kind = \"isolated\")",
                test.kind
            ));
        }
        let probe = match raw.probe.kind.as_str() {
            "tcp" => {
                let port = raw
                    .probe
                    .port
                    .filter(|port| *port != 0)
                    .ok_or("[probe] kind = \"tcp\" needs port = PORT (the guest's)")?;
                if raw.probe.marker.is_some() {
                    return Err("[probe] marker is only for kind = \"serial\"".to_owned());
                }
                let address = raw
                    .probe
                    .address
                    .map(|address| {
                        address.parse::<std::net::IpAddr>().map_err(|_| {
                            format!("[probe] address = \"{address}\" is not an IP address")
                        })
                    })
                    .transpose()?;
                Probe::Tcp {
                    port,
                    address,
                    send: raw.probe.send,
                }
            }
            "serial" => {
                let marker = raw
                    .probe
                    .marker
                    .filter(|marker| !marker.is_empty())
                    .ok_or("[probe] kind = \"serial\" needs marker = \"TEXT\"")?;
                if raw.probe.port.is_some() || raw.probe.send.is_some() {
                    return Err("[probe] port and send are only for kind = \"tcp\"".to_owned());
                }
                Probe::Serial { marker }
            }
            "guest-agent" => {
                if raw.probe.port.is_some()
                    || raw.probe.send.is_some()
                    || raw.probe.marker.is_some()
                    || raw.probe.address.is_some()
                {
                    return Err(
                        "[probe] kind = \"guest-agent\" takes no port, address, send or marker"
                            .to_owned(),
                    );
                }
                Probe::GuestAgent
            }
            other => {
                return Err(format!(
                    "[probe] kind = \"{other}\" is not tcp, serial or guest-agent"
                ));
            }
        };
        if matches!(production, ProductionNetwork::Bridge { .. })
            && matches!(&probe, Probe::Tcp { address: None, .. })
        {
            return Err(
                "[probe] a bridged production network needs address = \"GUEST IP\" \
                        (the host cannot forward a port to a bridged guest)"
                    .to_owned(),
            );
        }
        let seconds = |value: Option<u64>, default: u64, field: &str| {
            let value = value.unwrap_or(default);
            if (1..=MAX_TIMEOUT_SECONDS).contains(&value) {
                Ok(Duration::from_secs(value))
            } else {
                Err(format!(
                    "{field} = {value} is not between 1 and {MAX_TIMEOUT_SECONDS}"
                ))
            }
        };
        Ok(Spec {
            dir: dir.to_path_buf(),
            cpus: raw.cpus,
            memory_mib: raw.memory_mib,
            boot,
            disk_interface,
            production,
            probe,
            probe_timeout: seconds(
                raw.probe.timeout_seconds,
                DEFAULT_PROBE_TIMEOUT_SECONDS,
                "[probe] timeout_seconds",
            )?,
            shutdown_timeout: seconds(
                raw.timeouts.and_then(|timeouts| timeouts.shutdown_seconds),
                DEFAULT_SHUTDOWN_SECONDS,
                "[timeouts] shutdown_seconds",
            )?,
        })
    }
}

fn is_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_hexdigit()))
}

#[derive(Debug, Deserialize)]
struct ImageInfo {
    filename: String,
    format: String,
    #[serde(rename = "full-backing-filename", default)]
    full_backing_filename: Option<String>,
}

/// The replica's restore points, oldest first, after checking the chain with `qemu-img info
/// --backing-chain`: each point a qcow2 file backed by the one before it, the first by none.
pub async fn points(dir: &Path, qemu_img: &Path) -> Result<Vec<Point>, String> {
    let path = dir.join(POINTS_FILE);
    let shown = path.display().to_string();
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|error| format!("{shown}: cannot read the restore points: {error}"))?;
    let raw: PointsFile =
        toml::from_str(&text).map_err(|error| format!("{shown}: {}", error.message()))?;
    let mut points = Vec::with_capacity(raw.points.len());
    for point in raw.points {
        let created = time::OffsetDateTime::parse(
            &point.created,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
        .and_then(|_| Timestamp::parse(&point.created).ok())
        .ok_or_else(|| {
            format!(
                "{shown}: created = \"{}\" is not an RFC 3339 date-time",
                point.created
            )
        })?;
        let file = dir.join(&point.file);
        let file = std::fs::canonicalize(&file)
            .map_err(|error| format!("{}: restore point missing: {error}", file.display()))?;
        if file.to_str().is_none() {
            return Err(format!(
                "{}: not a UTF-8 path (QEMU's options need one)",
                file.display()
            ));
        }
        if let Some(previous) = points.last().map(|previous: &Point| previous.created)
            && created <= previous
        {
            return Err(format!(
                "{shown}: {} is created at {created}, not after the point before it ({previous}): \
                 list the points oldest first",
                file.display()
            ));
        }
        points.push(Point { created, file });
    }
    let Some(newest) = points.last() else {
        return Ok(points);
    };
    let output = tokio::process::Command::new(qemu_img)
        .args(["info", "--backing-chain", "--output=json", "-U"])
        .arg(&newest.file)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|error| format!("cannot run {}: {error}", qemu_img.display()))?;
    if !output.status.success() {
        return Err(format!(
            "broken restore point chain: qemu-img info {}: {}",
            newest.file.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let chain: Vec<ImageInfo> = serde_json::from_slice(&output.stdout).map_err(|error| {
        format!(
            "qemu-img info {}: unreadable answer: {error}",
            newest.file.display()
        )
    })?;
    // The chain from the newest back: point k must be backed by point k-1 exactly.
    for (index, point) in points.iter().enumerate().rev() {
        let position = points.len() - 1 - index;
        let Some(image) = chain.get(position) else {
            return Err(format!(
                "broken restore point chain: {} is not in the backing chain of {}",
                point.file.display(),
                newest.file.display()
            ));
        };
        let named = std::fs::canonicalize(&image.filename)
            .unwrap_or_else(|_| image.filename.clone().into());
        if named != point.file {
            return Err(format!(
                "broken restore point chain: {} is backed by {}, not by {} as {shown} lists",
                points
                    .get(index + 1)
                    .map(|later| later.file.display().to_string())
                    .unwrap_or_default(),
                image.filename,
                point.file.display()
            ));
        }
        if image.format != "qcow2" {
            return Err(format!(
                "{}: a restore point must be qcow2, not {}",
                point.file.display(),
                image.format
            ));
        }
        if index == 0 {
            if let Some(base) = &image.full_backing_filename {
                return Err(format!(
                    "broken restore point chain: the oldest point {} is backed by {base}, which \
                     {shown} does not list",
                    point.file.display()
                ));
            }
        } else if image.full_backing_filename.is_none() {
            return Err(format!(
                "broken restore point chain: {} has no backing file; it should be backed by {}",
                point.file.display(),
                points[index - 1].file.display()
            ));
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<Spec, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("vmlinuz"), b"k").map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join(SPEC_FILE), text).map_err(|e| e.to_string())?;
        Spec::load(dir.path())
    }

    const GOOD: &str = r#"
memory_mib = 128
[boot]
kernel = "vmlinuz"
[networks.production]
kind = "user"
[probe]
kind = "tcp"
port = 7000
"#;

    #[test]
    fn a_good_spec_reads_with_defaults() {
        let spec = spec(GOOD).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.cpus, 1);
        assert_eq!(spec.probe_timeout, Duration::from_secs(300));
        assert_eq!(spec.shutdown_timeout, Duration::from_secs(60));
        assert!(matches!(spec.probe, Probe::Tcp { port: 7000, .. }));
        let agent = GOOD.replace("kind = \"tcp\"\nport = 7000", "kind = \"guest-agent\"");
        let spec = super::Spec::check(
            Path::new("/"),
            toml::from_str(&agent.replace("vmlinuz", "/bin/sh")).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(spec.probe, Probe::GuestAgent));
    }

    #[test]
    fn bad_specs_are_refused_with_the_field_named() {
        for (text, expected) in [
            (GOOD.replace("vmlinuz\"", "missing\""), "[boot] kernel:"),
            (
                GOOD.replace("\"user\"", "\"wifi\""),
                "kind = \"wifi\" is not user or bridge",
            ),
            (GOOD.replace("port = 7000", ""), "needs port = PORT"),
            (
                GOOD.replace("memory_mib = 128", "memory_mib = 1"),
                "memory_mib = 1",
            ),
            (
                format!("{GOOD}\n[networks.test]\nkind = \"user\""),
                "always isolated",
            ),
            (
                GOOD.replace("kind = \"tcp\"", "kind = \"tcp\"\ncolour = 1"),
                "unknown field",
            ),
            (
                GOOD.replace("\"user\"", "\"bridge\"\nbridge = \"br0\""),
                "needs address",
            ),
            (
                GOOD.replace("kind = \"tcp\"", "kind = \"guest-agent\""),
                "takes no port",
            ),
            (
                GOOD.replace("\"user\"", "\"bridge\"\nbridge = \"br0,x=y\""),
                "not an interface name",
            ),
            (
                GOOD.replace("port = 7000", "port = 7000\naddress = \"guest.local\""),
                "not an IP address",
            ),
            (
                GOOD.replace("kind = \"tcp\"", "kind = \"ping\""),
                "not tcp, serial or guest-agent",
            ),
        ] {
            match spec(&text) {
                Ok(_) => panic!("accepted: {text}"),
                Err(message) => assert!(message.contains(expected), "{message}"),
            }
        }
    }
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    fn qemu_img(args: &[&str], dir: &Path) {
        let status = std::process::Command::new("qemu-img")
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap_or_else(|e| panic!("qemu-img: {e}"));
        assert!(status.success(), "qemu-img {args:?}");
    }

    fn write_points(dir: &Path, files: &[&str]) {
        let text: String = files
            .iter()
            .enumerate()
            .map(|(hour, file)| {
                format!("[[points]]\nfile = \"{file}\"\ncreated = \"2026-12-01T0{hour}:00:00Z\"\n")
            })
            .collect();
        std::fs::write(dir.join(POINTS_FILE), text).unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn a_chain_reads_oldest_first_and_a_broken_one_names_its_file() {
        if std::process::Command::new("qemu-img")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("qemu-img is not installed: skipped");
            return;
        }
        let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = temp.path();
        let img = Path::new("qemu-img");
        qemu_img(&["create", "-q", "-f", "qcow2", "a.qcow2", "1M"], dir);
        qemu_img(
            &[
                "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "a.qcow2", "b.qcow2",
            ],
            dir,
        );
        qemu_img(&["create", "-q", "-f", "qcow2", "stray.qcow2", "1M"], dir);
        qemu_img(
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "qcow2",
                "-b",
                "stray.qcow2",
                "c.qcow2",
            ],
            dir,
        );

        write_points(dir, &["a.qcow2", "b.qcow2"]);
        let chain = points(dir, img).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(chain.len(), 2);
        assert!(chain[0].created < chain[1].created);
        assert!(chain[1].file.ends_with("b.qcow2"));

        // c is backed by stray, not by b.
        write_points(dir, &["a.qcow2", "b.qcow2", "c.qcow2"]);
        let message = points(dir, img).await.err().unwrap_or_default();
        assert!(message.contains("broken restore point chain"), "{message}");
        assert!(
            message.contains("c.qcow2") && message.contains("stray.qcow2"),
            "{message}"
        );

        // b is listed as the oldest, but it has a base that is not listed.
        write_points(dir, &["b.qcow2"]);
        let message = points(dir, img).await.err().unwrap_or_default();
        assert!(
            message.contains("oldest point") && message.contains("b.qcow2"),
            "{message}"
        );

        write_points(dir, &["a.qcow2", "gone.qcow2"]);
        let message = points(dir, img).await.err().unwrap_or_default();
        assert!(
            message.contains("gone.qcow2") && message.contains("missing"),
            "{message}"
        );

        std::fs::write(
            dir.join(POINTS_FILE),
            "[[points]]\nfile = \"a.qcow2\"\ncreated = \"yesterday\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let message = points(dir, img).await.err().unwrap_or_default();
        assert!(message.contains("not an RFC 3339"), "{message}");
    }
}
