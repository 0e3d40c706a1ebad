#!/usr/bin/env bash
# Builds a tiny guest and VM replica directories for the agent's qemu driver, from Debian
# packages only (the cloud kernel's vmlinuz and virtio modules, busybox-static):
#
#   tests/guest/build.sh OUTDIR [--vms N] [--points K] [--plan NAME] [--accel tcg|kvm|auto]
#
# OUTDIR/guest/{vmlinuz,initrd.img}   the guest: busybox in an initramfs
# OUTDIR/vm-I/vm.toml                 each VM's spec (CPUs, memory, boot, networks, probe)
# OUTDIR/vm-I/points/point-J.qcow2    its restore points, read-only, each backed by the last
# OUTDIR/vm-I/points.toml             when each point was created (hourly, the newest at the
#                                     last whole hour)
# OUTDIR/host.toml                    an agent manifest: one plan of the N VMs in boot order
#
# Each point's disk starts with a line naming the VM, the point and its creation time. The
# guest prints that line on its serial console ("STANDBY-READY <marker>") and serves it on TCP
# port 7000; a client that then sends "reach HOST PORT" gets "reach: ok <what HOST:PORT said>"
# or "reach: failed" (how the tests prove a test failover's network is isolated). When QEMU gives
# it a guest agent port (a "guest-agent" probe), a stand-in for qemu-ga answers guest-ping there.
#
# Downloads go to $STANDBY_GUEST_CACHE (default OUTDIR/.cache) and are reused.
set -euo pipefail

usage() {
    echo "usage: $0 OUTDIR [--vms N] [--points K] [--plan NAME] [--accel tcg|kvm|auto]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
out=$1
shift
vms=3 points=3 plan="Guest DR" accel=tcg
while [ $# -gt 0 ]; do
    case $1 in
        --vms) vms=${2:?}; shift 2 ;;
        --points) points=${2:?}; shift 2 ;;
        --plan) plan=${2:?}; shift 2 ;;
        --accel) accel=${2:?}; shift 2 ;;
        *) usage ;;
    esac
done
case $vms in ''|*[!0-9]*) echo "--vms: not a number: $vms" >&2; exit 2 ;; esac
case $points in ''|*[!0-9]*) echo "--points: not a number: $points" >&2; exit 2 ;; esac
[ "$vms" -ge 1 ] && [ "$vms" -le 64 ] || { echo "--vms: between 1 and 64" >&2; exit 2; }
[ "$points" -ge 1 ] && [ "$points" -le 48 ] || { echo "--points: between 1 and 48" >&2; exit 2; }
case $accel in tcg|kvm|auto) ;; *) echo "--accel: tcg, kvm or auto" >&2; exit 2 ;; esac
for tool in qemu-img busybox apt-get dpkg-deb flock; do
    command -v "$tool" >/dev/null || {
        echo "$tool is missing: apt-get install -y --no-install-recommends qemu-utils busybox-static" >&2
        exit 1
    }
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=${STANDBY_GUEST_CACHE:-$out/.cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# The packages, downloaded once (several builds at once share the cache under a lock).
resolve_kernel() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
kernel_package=$(resolve_kernel)
# A machine whose package lists were never fetched: fetch them once (root only).
if [ -z "$kernel_package" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -q >&2
    kernel_package=$(resolve_kernel)
fi
[ -n "$kernel_package" ] || { echo "cannot resolve linux-image-cloud-amd64's kernel package" >&2; exit 1; }
(
    flock 9
    cd "$cache"
    for package in "$kernel_package" busybox-static; do
        ls "$cache/${package}_"*.deb >/dev/null 2>&1 ||
            apt-get download -q "$package" 2>&1 | grep -v 'unsandboxed' || true
        ls "$cache/${package}_"*.deb >/dev/null 2>&1 ||
            { echo "apt-get download $package failed" >&2; exit 1; }
    done
    if [ ! -f "$cache/$kernel_package/done" ]; then
        rm -rf "$cache/$kernel_package" "$cache/busybox"
        dpkg-deb -x "$cache/${kernel_package}_"*.deb "$cache/$kernel_package"
        dpkg-deb -x "$cache/busybox-static_"*.deb "$cache/busybox"
        touch "$cache/$kernel_package/done"
    fi
) 9>"$cache/lock"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The initramfs: busybox, the virtio modules in load order, and /init.
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules,etc}
cp "$cache/busybox/bin/busybox" "$root/bin/busybox"
modules=$(find "$cache/$kernel_package/lib/modules" -mindepth 1 -maxdepth 1 -type d)
for module in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \
    virtio_blk failover net_failover virtio_net virtio_console button evdev; do
    file=$(find "$modules/kernel" -name "$module.ko" | head -n1)
    [ -n "$file" ] || { echo "module $module not in $kernel_package" >&2; exit 1; }
    cp "$file" "$root/lib/modules/"
    echo "$module" >>"$root/lib/modules/order"
done
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for module in $(cat /lib/modules/order); do insmod /lib/modules/$module.ko; done
for _ in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
marker=$(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -d '\000' | head -n1)
[ -n "$marker" ] || marker="STANDBY-MARKER none"
echo "$marker" >/marker
# A stand-in for qemu-ga when QEMU gives the guest a guest agent port: answers guest-ping.
# (Not with standby.no-guest-agent on the kernel line: how the tests make a guest that never answers.)
if grep -qsE '0x(1003|1043)' /sys/bus/pci/devices/*/device; then  # a virtio-serial device
    for _ in $(seq 1 50); do [ -d /sys/class/virtio-ports ] && break; sleep 0.1; done
fi
for port in /sys/class/virtio-ports/*; do
    [ "$(cat "$port/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
    grep -q standby.no-guest-agent /proc/cmdline && continue
    (
        exec 3<>"/dev/${port##*/}"
        # A read returns at once (end of file) while no client is connected on the host side.
        while true; do
            if read -r line <&3; then
                case $line in *guest-ping*) echo '{"return": {}}' >&3 ;; esac
            else
                sleep 0.2
            fi
        done
    ) &
done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
# QMP system_powerdown presses the ACPI power button: power off at once.
mkdir -p /etc/acpi/PWRF
printf '#!/bin/sh\npoweroff -f\n' >/etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
mkdir -p /var/log
acpid -f -c /etc/acpi &
nc -ll -p 7000 -e /bin/serve &
echo "STANDBY-READY $marker" >/dev/console
while :; do sleep 3600; done
INIT
cat >"$root/bin/serve" <<'SERVE'
#!/bin/sh
cat /marker
if read -t 3 verb host port && [ "$verb" = reach ]; then
    if answer=$(nc -w 3 "$host" "$port" </dev/null) && [ -n "$answer" ]; then
        echo "reach: ok $answer"
    else
        echo "reach: failed"
    fi
fi
SERVE
chmod +x "$root/init" "$root/bin/serve"
mkdir -p "$out/guest"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$out/guest/initrd.img.new"
mv "$out/guest/initrd.img.new" "$out/guest/initrd.img"
cp "$cache/$kernel_package/boot/vmlinuz-"* "$out/guest/vmlinuz"

# The replicas: point J of VM I differs from point J-1 in its first sector (the marker).
newest=$(( $(date -u +%s) / 3600 * 3600 ))
vm_entries=""
for i in $(seq 1 "$vms"); do
    vm=vm-$i
    dir=$out/$vm
    if [ -d "$dir/points" ]; then chmod -R u+w "$dir/points"; fi
    rm -rf "$dir"
    mkdir -p "$dir/points"
    : >"$dir/points.toml.new"
    for j in $(seq 1 "$points"); do
        created=$(date -u -d "@$(( newest - (points - j) * 3600 ))" +%Y-%m-%dT%H:%M:%SZ)
        raw=$work/$vm-$j.raw
        truncate -s 4M "$raw"
        printf 'STANDBY-MARKER %s point-%s %s\n' "$vm" "$j" "$created" |
            dd of="$raw" conv=notrunc status=none
        qemu-img convert -q -f raw -O qcow2 "$raw" "$dir/points/point-$j.qcow2"
        if [ "$j" -gt 1 ]; then
            # Keeps only what differs from the previous point (a safe rebase compares them).
            qemu-img rebase -q -f qcow2 -b "point-$((j - 1)).qcow2" -F qcow2 "$dir/points/point-$j.qcow2"
        fi
        rm -f "$raw"
        printf '[[points]]\nfile = "points/point-%s.qcow2"\ncreated = "%s"\n\n' "$j" "$created" \
            >>"$dir/points.toml.new"
    done
    chmod 0444 "$dir/points/"*.qcow2
    chmod 0555 "$dir/points"
    mv "$dir/points.toml.new" "$dir/points.toml"
    cat >"$dir/vm.toml" <<SPEC
# The spec of replica $vm for the agent's qemu driver (paths are relative to this directory).
cpus = 1
memory_mib = 128

[boot]
kernel = "../guest/vmlinuz"
initrd = "../guest/initrd.img"
append = "console=ttyS0 quiet"

[networks.production]
kind = "user"          # QEMU user networking: the guest reaches the host (10.0.2.2) and beyond

[networks.test]
kind = "isolated"      # no route anywhere; only the probe's loopback forward reaches the guest

[probe]
kind = "tcp"           # ready once the guest's port 7000 answers with a byte
port = 7000
timeout_seconds = 180

[timeouts]
shutdown_seconds = 10  # undo: after system_powerdown, wait this long before quit
SPEC
    vm_entries+="
[[plans.vms]]
name = \"$vm\"
replica = \"$dir\"
"
done

cat >"$out/host.toml" <<HOST
# An agent manifest written by tests/guest/build.sh: one plan of $vms VMs, in boot order.
# Run it with: standby agent run --control-url URL --config $out/host.toml --state-dir DIR
driver = "qemu"

[qemu]
accel = "$accel"       # tcg (works everywhere), kvm, or auto (kvm when /dev/kvm is usable)
max_parallel_boots = 8

[[plans]]
name = "$plan"
type = "Local"
$vm_entries
HOST
echo "built $vms VM(s) with $points restore point(s) each in $out"
