#!/usr/bin/env bash
# The baseline for Standby's QEMU overhead: a plain shell script that does what the agent's qemu
# driver does for each VM, with nothing around it: an overlay on the newest restore point, the
# same QEMU command line (daemonized, TCG, user networking with a loopback probe forward), all
# VMs at once, then a TCP probe every 0.25 s until the guest sends a byte. Prints the seconds
# from its start until every guest answered, then stops the guests.
#
#   bench/qemu/baseline.sh GUESTS_DIR WORK_DIR VMS
#
# GUESTS_DIR is what tests/guest/build.sh wrote.
set -euo pipefail
guests=$1 work=$2 vms=$3
rm -rf "$work" && mkdir -p "$work"
# The guests go however the script ends.
trap 'for pidfile in "$work"/vm-*/qemu.pid; do kill -KILL "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null || true; done' EXIT

probe() { # port -> success once the guest sends a byte (bash builtins only: one fork a try)
    (exec 3<>"/dev/tcp/127.0.0.1/$1" && read -r -t 3 -n 1 byte <&3 && [ -n "$byte" ]) 2>/dev/null
}

free_port() { # a random high port nothing answers on (bash builtins only)
    while true; do
        local port=$((20000 + RANDOM % 30000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

start=$(date +%s.%N)
ports=() launchers=()
for i in $(seq 1 "$vms"); do
    vm=$guests/vm-$i dir=$work/vm-$i
    mkdir -p "$dir"
    newest=$(grep '^file = ' "$vm/points.toml" | tail -n1 | sed 's/file = "\(.*\)"/\1/')
    qemu-img create -q -f qcow2 -F qcow2 -b "$vm/$newest" "$dir/disk.qcow2"
    port=$(free_port)
    ports+=("$port")
    qemu-system-x86_64 -name "baseline-vm-$i" -daemonize -pidfile "$dir/qemu.pid" \
        -qmp "unix:$dir/qmp.sock,server=on,wait=off" -nodefaults -no-user-config \
        -display none -accel tcg -smp 1 -m 128 \
        -kernel "$guests/guest/vmlinuz" -initrd "$guests/guest/initrd.img" \
        -append "console=ttyS0 quiet no_timer_check" \
        -drive "file=$dir/disk.qcow2,if=virtio,format=qcow2" \
        -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:7000" \
        -device virtio-net-pci,netdev=net0 -serial "file:$dir/serial.log" 2>"$dir/qemu.log" &
    launchers+=($!)
done
for i in "${!launchers[@]}"; do
    wait "${launchers[$i]}" || { echo "QEMU for vm-$((i + 1)) failed: $(cat "$work/vm-$((i + 1))/qemu.log")" >&2; exit 1; }
done

# The same probing as the driver: a new try every 0.25 s per guest, tries overlapping.
waiters=()
for port in "${ports[@]}"; do
    (
        for _ in $(seq 1 1200); do # at most 5 minutes
            probe "$port" && { touch "$work/ready-$port"; exit 0; } &
            sleep 0.25
            [ -e "$work/ready-$port" ] && exit 0
        done
        echo "the guest on port $port never answered" >&2
        exit 1
    ) &
    waiters+=($!)
done
failed=0
for waiter in "${waiters[@]}"; do wait "$waiter" || failed=1; done
end=$(date +%s.%N)
python3 -c "print(f'{$end - $start:.3f}')"
exit "$failed"
