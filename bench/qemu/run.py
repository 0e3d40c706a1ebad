#!/usr/bin/env python3
"""Standby's overhead on real guests: a test failover of a plan of N VMs (default 4) through the
VSPC API, the control plane and the agent's qemu driver, from the start request until the plan is
Success (every guest answered its probe), against bench/qemu/baseline.sh booting the same guests
the same way with nothing around it. Both run in each round, side by side; medians over --runs.

    python3 bench/qemu/run.py [--runs 3] [--vms 4] [--binary target/release/standby]

Needs qemu-system-x86 and qemu-utils (see the README); builds the guests with
tests/guest/build.sh and the release binary if it is missing.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLANS = "/api/v3/infrastructure/backupServers/failoverplans"
PASSWORD = "bench password, not secret"
PLAN = "Bench guests"

FLEET = """
[[organizations]]
name = "MSP"
kind = "provider"

[[servers]]
name = "vbr-1"
organization = "MSP"

[[plans]]
name = "Unrelated sim plan"
server = "vbr-1"
type = "Local"
  [[plans.vms]]
  name = "sim-vm"
  restore_points = ["2026-11-01T00:00:00Z"]
"""


def call(base, token, method, path, query=None, data=None):
    url = base + path + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(url, method=method, data=data)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        return json.loads(body) if body else None


def plan_by_name(base, token, name):
    listed = call(base, token, "GET", PLANS, {"limit": "500"})
    for plan in listed["data"]:
        if plan["name"] == name:
            return plan
    return None


def wait_status(base, token, uid, statuses, limit=600):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        plan = call(base, token, "GET", f"{PLANS}/{uid}")["data"]
        if plan["status"] in statuses:
            return plan
        time.sleep(0.05)
    sys.exit(f"plan {uid} never reached {statuses}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--vms", type=int, default=4)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/standby"))
    parser.add_argument("--output", help="write the figures as JSON here")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        subprocess.run(["cargo", "build", "--release", "-p", "standby"], cwd=ROOT, check=True)

    work = tempfile.mkdtemp(prefix="standby-bench-qemu-")
    guests = os.path.join(work, "guests")
    env = dict(os.environ, STANDBY_GUEST_CACHE=os.path.join(ROOT, "target/guest-cache"))
    subprocess.run([os.path.join(ROOT, "tests/guest/build.sh"), guests, "--vms", str(args.vms),
                    "--points", "1", "--plan", PLAN], check=True, env=env)
    fleet = os.path.join(work, "fleet.toml")
    with open(fleet, "w") as file:
        file.write(FLEET)
    data = os.path.join(work, "data")
    serve_env = dict(os.environ, STANDBY_ADMIN_USER="admin", STANDBY_ADMIN_PASSWORD=PASSWORD,
                     RUST_LOG="warn")
    server = subprocess.Popen([args.binary, "serve", "--data-dir", data, "--fleet", fleet,
                               "--listen", "127.0.0.1:0", "--throttle-requests-per-minute",
                               "1000000"], stdout=subprocess.PIPE, text=True, env=serve_env)
    agent = None
    try:
        base = None
        for line in server.stdout:
            if line.startswith("standby: listening on "):
                base = line.split("standby: listening on ", 1)[1].strip()
                break
        token = call(base, None, "POST", "/api/v3/token", data=urllib.parse.urlencode(
            {"grant_type": "password", "username": "admin", "password": PASSWORD}).encode())[
            "access_token"]
        added = subprocess.run([args.binary, "servers", "add", "bench-host", "--org", "MSP",
                                "--data-dir", data], check=True, capture_output=True, text=True)
        enrollment = added.stdout.strip().splitlines()[-1]
        agent_log = open(os.path.join(work, "agent.log"), "w")
        agent = subprocess.Popen([args.binary, "agent", "run", "--control-url", base, "--config",
                                  os.path.join(guests, "host.toml"), "--state-dir",
                                  os.path.join(work, "agent-state"), "--enroll", enrollment],
                                 stdout=subprocess.DEVNULL, stderr=agent_log,
                                 env=dict(os.environ, RUST_LOG="warn"))
        deadline = time.monotonic() + 60
        plan = None
        while plan is None and time.monotonic() < deadline:
            plan = plan_by_name(base, token, PLAN)
            time.sleep(0.2)
        if plan is None:
            sys.exit("the agent's plan never appeared")
        uid = plan["instanceUid"]

        baseline, standby, ready = [], [], []
        def run_baseline():
            seconds = subprocess.run([os.path.join(ROOT, "bench/qemu/baseline.sh"), guests,
                                      os.path.join(work, "baseline"), str(args.vms)],
                                     check=True, capture_output=True, text=True).stdout
            baseline.append(float(seconds.strip().splitlines()[-1]))

        def run_standby():
            started = time.monotonic()
            call(base, token, "POST", f"{PLANS}/{uid}/start", {"test": "true"})
            plan = wait_status(base, token, uid, ["Success", "Failed"])
            standby.append(time.monotonic() - started)
            if plan["status"] != "Success":
                sys.exit(f"the test failover failed: {plan['lastSession']}")
            # What the driver itself measured, launch to ready, per VM.
            session = json.dumps(plan["lastSession"])
            for part in session.split("ready in ")[1:]:
                ready.append(float(part.split(" s", 1)[0]))
            call(base, token, "POST", f"{PLANS}/{uid}/undo")
            wait_status(base, token, uid, ["Ready"])

        for run in range(args.runs):
            # Alternating which goes first, so that neither always meets a machine the other
            # just left busy.
            for step in ((run_baseline, run_standby) if run % 2 == 0 else
                         (run_standby, run_baseline)):
                step()
            print(f"run {run + 1}: baseline {baseline[-1]:.2f} s, standby {standby[-1]:.2f} s",
                  flush=True)
        figures = {
            "vms": args.vms,
            "runs": args.runs,
            "baseline_seconds": baseline,
            "standby_seconds": standby,
            "baseline_median": statistics.median(baseline),
            "standby_median": statistics.median(standby),
            "ratio": statistics.median(standby) / statistics.median(baseline),
            "driver_launch_to_ready_median": statistics.median(ready) if ready else None,
        }
        print(json.dumps(figures, indent=2))
        if args.output:
            with open(args.output, "w") as file:
                json.dump(figures, file, indent=2)
    finally:
        if agent:
            agent.kill()
            agent.wait()
        server.kill()
        server.wait()
        # Guests left by a failed run.
        subprocess.run(["pkill", "-KILL", "-f", work], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
