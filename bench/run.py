#!/usr/bin/env python3
"""Standby's benchmark: one command reproduces every figure in bench/README.md.

    python3 bench/run.py --preset large --runs 3        # the recorded figures (about 25 min)
    python3 bench/run.py --preset small --runs 1 --seconds 2 --engine-plans 20 --start-plans 20
                                                        # the CI smoke run (seconds)

It builds the release binaries, generates the fleet into a fresh store (SQLite by default,
PostgreSQL with --database URL), starts `standby serve`, measures start-up time to /readyz,
drives each scenario with wrk over loopback, measures the engine's throughput, and drives the
ceiling (bench/ceiling: a fixed body of the same size as a 100-plan page) with the same wrk
settings. Every figure is printed as the median over the runs and as a ratio to the ceiling.
Only the standard library is used; wrk comes from the distribution (apt-get install wrk).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDBY = os.path.join(ROOT, "target", "release", "standby")
CEILING = os.path.join(ROOT, "target", "release", "standby-bench-ceiling")


def use_debug_build():
    global STANDBY, CEILING
    STANDBY = os.path.join(ROOT, "target", "debug", "standby")
    CEILING = os.path.join(ROOT, "target", "debug", "standby-bench-ceiling")
PLANS = "/api/v3/infrastructure/backupServers/failoverplans"
OBJECTS = PLANS + "/objects"
ADMIN, PASSWORD = "bench", "benchmark password"
STANDBY_PORT, CEILING_PORT = 18780, 18790

# wrk reports through this script: one JSON line with throughput, latency percentiles and
# the count of non-2xx answers. For PATCH and start it also sets the method and body.
LUA = r"""
local method, body, paths, index = "GET", nil, nil, 0
local bust, sent = false, 0
local threads = 0
function setup(thread)
  thread:set("slot", threads)
  threads = threads + 1
end
function init(args)
  if args[1] then method = args[1] end
  if args[2] and args[2] ~= "" then body = args[2] end
  -- "bust": every request gets its own `_` parameter (ignored by the API), so that none is
  -- answered from the response cache: the cost of a read computed afresh.
  if args[4] == "bust" then bust = true end
  if args[3] and args[3] ~= "" then
    paths = {}
    for path in io.lines(args[3]) do table.insert(paths, path) end
    -- wrk's two threads take disjoint halves of the list.
    index = math.floor((slot or 0) * #paths / 2)
  end
end
function request()
  local path = nil
  if paths then index = index + 1; path = paths[((index - 1) % #paths) + 1] end
  if bust then
    sent = sent + 1
    path = path or wrk.path
    local joiner = string.find(path, "?", 1, true) and "&" or "?"
    path = path .. joiner .. "_=" .. (slot or 0) .. "-" .. sent
  end
  return wrk.format(method, path, nil, body)
end
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%f,"p50_ms":%f,"p99_ms":%f,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
"""


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def http(method, url, token=None, body=None, form=None):
    headers = {}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def ensure_port_free(port):
    """Refuses to go on when something already listens on `port`: the server about to start
    would fail to bind, and the figures would be a leftover server's (this happened once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise SystemExit(f"port {port} is taken ({error}): stop whatever listens there "
                             "(a leftover `standby serve`?) and run again")


def wait_ready(base, process, timeout=600):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise SystemExit(f"standby exited with {process.returncode}")
        try:
            status, _ = http("GET", base + "/readyz")
            if status == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit("standby did not become ready")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wrk(url, token, seconds, connections, method="GET", body=None, paths=None, bust=False,
        headers=()):
    script = os.path.join(tempfile.gettempdir(), "standby-bench.lua")
    with open(script, "w") as handle:
        handle.write(LUA)
    # A long timeout: a slow scenario is reported with its real latency, not as 0 requests.
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--timeout", "60s", "--latency",
               "-s", script]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    for header in headers:
        command += ["-H", header]
    if body is not None:
        command += ["-H", "Content-Type: application/json"]
    command += [url, "--", method, json.dumps(body) if body is not None else ""]
    if paths:
        # One path per line in a file: thousands of them do not fit on a command line.
        listing = os.path.join(tempfile.gettempdir(), "standby-bench-paths.txt")
        with open(listing, "w") as handle:
            handle.write("\n".join(paths) + "\n")
        command.append(listing)
    elif bust:
        command.append("")
    if bust:
        command.append("bust")
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def token_of(base):
    status, body = http("POST", base + "/api/v3/token",
                        form={"grant_type": "password", "username": ADMIN, "password": PASSWORD})
    if status != 200:
        raise SystemExit(f"login failed: {status} {body[:200]!r}")
    return json.loads(body)["access_token"]


def get_json(base, path, token, query=None):
    url = base + path + ("?" + urllib.parse.urlencode(query) if query else "")
    status, body = http("GET", url, token)
    if status != 200:
        raise SystemExit(f"GET {path} answered {status}: {body[:300]!r}")
    return json.loads(body)


def start_server(args, store_flags, log_path, extra=()):
    env = dict(os.environ, STANDBY_ADMIN_USER=ADMIN, STANDBY_ADMIN_PASSWORD=PASSWORD,
               RUST_LOG="warn")
    command = [STANDBY, "serve", "--listen", f"127.0.0.1:{STANDBY_PORT}", *store_flags,
               "--throttle-requests-per-minute", "100000000", "--throttle-concurrent", "100000",
               "--sim-boot-ms", "0-0", "--undo-batch-interval-seconds", "0",
               "--max-page-size", "500", *extra]
    # The server's own log (slow-statement warnings under load) goes to a file, not the report.
    ensure_port_free(STANDBY_PORT)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=open(log_path, "w"))
    base = f"http://127.0.0.1:{STANDBY_PORT}"
    return process, base, wait_ready(base, process)


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


RUNNING = {"filter": json.dumps([{"property": "status", "operation": "in",
                                  "value": ["InProgress", "InUndoProgress"]}]), "limit": "1"}


def wait_idle(base, token, timeout):
    """Waits until no plan is running; returns how long that took."""
    started = time.monotonic()
    while True:
        left = get_json(base, PLANS, token, RUNNING)["meta"]["pagingInfo"]["total"]
        if left == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{left} plans still running after {timeout} s")
        time.sleep(0.05)


def settle(base, token, plan, timeout=300):
    """Waits until requests a scenario left queued in the server have drained (one plan is
    read back quickly again), so that they do not slow the next scenario down."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        began = time.monotonic()
        http("GET", f"{base}{PLANS}/{plan}", token)
        if time.monotonic() - began < 0.05:
            return
        time.sleep(0.2)


def engine_throughput(base, token, plans, timeout):
    """Starts `plans` Ready plans at once and times until every one is terminal."""
    ready = get_json(base, PLANS, token, {
        "filter": json.dumps([{"property": "status", "operation": "equals", "value": "Ready"}]),
        "limit": "500", "select": json.dumps([{"propertyPath": "instanceUid"}]),
    })
    uids = [p["instanceUid"] for p in ready["data"]]
    offset = 500
    while len(uids) < plans and offset < ready["meta"]["pagingInfo"]["total"]:
        more = get_json(base, PLANS, token, {
            "filter": json.dumps([{"property": "status", "operation": "equals", "value": "Ready"}]),
            "limit": "500", "offset": str(offset)})
        uids += [p["instanceUid"] for p in more["data"]]
        offset += 500
    uids = uids[:plans]
    if len(uids) < plans:
        raise SystemExit(f"only {len(uids)} Ready plans for the engine run")
    vms = 0
    started = time.monotonic()
    # Accept all of them as fast as the API takes them (16 at a time), then wait.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda uid: http("POST", f"{base}{PLANS}/{uid}/start", token)[0], uids))
    accepted = time.monotonic() - started
    if any(status != 200 for status in statuses):
        raise SystemExit(f"some starts were refused: {sorted(set(statuses))}")
    wait_idle(base, token, timeout)
    elapsed = time.monotonic() - started
    for uid in uids[:1]:
        vms = get_json(base, f"{PLANS}/{uid}", token)["data"]["objectsCount"]
    failed = get_json(base, PLANS, token, {
        "filter": json.dumps([{"property": "status", "operation": "equals", "value": "Failed"}]),
        "limit": "1"})["meta"]["pagingInfo"]["total"]
    return {"plans": plans, "vms_per_plan": vms, "accept_seconds": accepted,
            "terminal_seconds": elapsed, "failed": failed}


def generated_sqlite(preset):
    """The preset's fleet in a SQLite data directory under target/, generated on first use."""
    cache = os.path.join(ROOT, "target", "bench-fleets", preset)
    marker = os.path.join(cache, "complete")
    if not os.path.exists(marker):
        shutil.rmtree(cache, ignore_errors=True)
        log(f"generating the {preset} fleet once into {cache}")
        started = time.monotonic()
        subprocess.run([STANDBY, "fleet", "generate", "--preset", preset, "--data-dir", cache],
                       check=True, stdout=sys.stderr)
        with open(marker, "w") as handle:
            handle.write(f"{time.monotonic() - started:.1f} seconds\n")
    return cache


def one_run(args, run):
    workdir = tempfile.mkdtemp(prefix="standby-bench-")
    try:
        if args.database:
            store_flags = ["--database", args.database_for_run(run)]
            log(f"run {run + 1}: generating the {args.preset} fleet")
            generate = [STANDBY, "fleet", "generate", "--preset", args.preset, *store_flags]
            subprocess.run(generate, check=True, stdout=sys.stderr)
        else:
            # Generated once per preset (the large one takes minutes), copied fresh for each run
            # because a run starts plans.
            data = os.path.join(workdir, "data")
            shutil.copytree(generated_sqlite(args.preset), data)
            # Write the copy out now: left dirty in the page cache, its 2 GB would be flushed by
            # the server's first WAL checkpoint (an fsync), which then took 3.5 s.
            os.sync()
            store_flags = ["--data-dir", data]

        server_log = os.path.join(tempfile.gettempdir(), f"standby-bench-server-{run + 1}.log")
        process, base, startup = start_server(args, store_flags, server_log, ["--workers", "64"])
        log(f"run {run + 1}: ready in {startup:.2f} s")
        token = token_of(base)
        page = get_json(base, PLANS, token, {"limit": "100"})
        page_bytes = len(json.dumps(page, separators=(",", ":")).encode())
        plan = page["data"][0]["instanceUid"]
        ensure_port_free(CEILING_PORT)
        ceiling = subprocess.Popen([CEILING, "--listen", f"127.0.0.1:{CEILING_PORT}",
                                    "--bytes", str(page_bytes)], stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        figures = {"startup_seconds": startup, "page_bytes": page_bytes}
        sort_name = json.dumps([{"property": "name", "direction": "ascending"}])
        status_filter = json.dumps([{"property": "status", "operation": "equals", "value": "Ready"}])
        contains = json.dumps([{"property": "name", "operation": "contains", "value": "SQL-0004",
                                "collation": "ignorecase"}])
        scenarios = [
            ("ceiling", f"http://127.0.0.1:{CEILING_PORT}/", None, {}),
            ("plans_list", base + PLANS + "?limit=100", token, {}),
            ("plans_filtered_sorted", base + PLANS + "?" + urllib.parse.urlencode(
                {"filter": status_filter, "sort": sort_name, "limit": "100"}), token, {}),
            ("objects_contains_ignorecase_sorted", base + OBJECTS + "?" + urllib.parse.urlencode(
                {"filter": contains, "sort": sort_name, "limit": "100"}), token,
             # A full scan per request: 32 at once would only measure the queue; this one
             # is measured one request at a time (its target is a latency).
             {"connections": 1}),
            ("objects_of_plan", f"{base}{PLANS}/{plan}/objects", token, {}),
            ("get_plan", f"{base}{PLANS}/{plan}", token, {}),
            ("patch_plan", f"{base}{PLANS}/{plan}", token, {
                "method": "PATCH",
                "body": [{"op": "replace", "path": "/postFailoverCommand", "value": "C:\\post.ps1"}]}),
        ]
        # The same reads again, each request computed afresh (a cache miss): what a query
        # nobody asked for since the last write costs.
        scenarios += [
            (f"{name}_uncached", url, auth, dict(options, bust=True))
            for name, url, auth, options in scenarios
            if name in UNCACHED
        ]
        for name, url, auth, options in scenarios:
            result = wrk(url, auth, args.seconds, options.get("connections", args.connections),
                         options.get("method", "GET"), options.get("body"),
                         bust=options.get("bust", False))
            figures[name] = result
            settle(base, token, plan)
            log(f"run {run + 1}: {name:36} {result['rps']:9.0f} req/s  p50 {result['p50_ms']:7.2f} ms"
                f"  p99 {result['p99_ms']:7.2f} ms  non-2xx {result['non2xx']}")
        # Start: each request starts a different Ready plan (an accepted start is a 200), taken
        # from the end of the name order; the engine run below takes its plans from the front.
        descending = json.dumps([{"property": "name", "direction": "descending"}])
        paths = []
        for offset in range(0, args.start_plans, 500):
            ready = get_json(base, PLANS, token, {"filter": status_filter, "sort": descending,
                                                  "limit": "500", "offset": str(offset)})
            paths += [f"{PLANS}/{p['instanceUid']}/start" for p in ready["data"]]
            if len(ready["data"]) < 500:
                break
        paths = paths[:args.start_plans]
        result = wrk(base + PLANS, token, min(args.seconds, 2), args.connections, "POST", None, paths)
        result["accepted"] = result["requests"] - result["non2xx"]
        result["accepted_per_second"] = result["accepted"] / result["seconds"]
        figures["start"] = result
        log(f"run {run + 1}: start: {result['accepted']} accepted of {result['requests']} "
            f"({len(paths)} distinct plans), p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms")
        wait_idle(base, token, args.engine_timeout)
        figures["engine"] = engine_throughput(base, token, args.engine_plans, args.engine_timeout)
        log(f"run {run + 1}: engine: {figures['engine']}")
        figures["peak_rss_mib"] = peak_rss_mib(process.pid)
        ceiling.kill()
        ceiling.wait()
        stop(process)
        return figures
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# Reads measured a second time with every request a cache miss.
UNCACHED = ["plans_list", "plans_filtered_sorted", "objects_contains_ignorecase_sorted", "get_plan"]


def median(runs, path):
    values = []
    for run in runs:
        value = run
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def report(args, runs):
    ceiling_rps = median(runs, ["ceiling", "rps"])
    lines = [
        f"Preset {args.preset}, {len(runs)} run(s), wrk -t2 -c{args.connections} -d{args.seconds}s "
        f"(the contains scenario -c1), "
        f"{'PostgreSQL' if args.database else 'SQLite'}; medians.",
        "",
        "| scenario | req/s | ratio to ceiling | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    names = ["ceiling", "plans_list", "plans_filtered_sorted", "objects_contains_ignorecase_sorted",
             "objects_of_plan", "get_plan", "patch_plan"] + [f"{n}_uncached" for n in UNCACHED]
    for name in names:
        if not all(name in run for run in runs):
            continue  # an older run's file, from before the scenario existed
        rps = median(runs, [name, "rps"])
        shown = f"{rps:.0f}" if rps >= 10 else f"{rps:.2f}"
        lines.append(f"| {name} | {shown} | {rps / ceiling_rps:.4f} | "
                     f"{median(runs, [name, 'p50_ms']):.2f} | {median(runs, [name, 'p99_ms']):.2f} |")
    start = median(runs, ["start", "accepted_per_second"])
    lines.append(f"| start (accepted/s) | {start:.0f} | {start / ceiling_rps:.4f} | "
                 f"{median(runs, ['start', 'p50_ms']):.2f} | {median(runs, ['start', 'p99_ms']):.2f} |")
    lines += [
        "",
        f"- ceiling body: {median(runs, ['page_bytes']):.0f} bytes (a 100-plan page)",
        f"- start-up to /readyz: {median(runs, ['startup_seconds']):.2f} s",
        f"- peak RSS of standby serve: {median(runs, ['peak_rss_mib']):.0f} MiB",
        f"- engine: {args.engine_plans} plans x {median(runs, ['engine', 'vms_per_plan']):.0f} VMs "
        f"accepted in {median(runs, ['engine', 'accept_seconds']):.2f} s, all terminal in "
        f"{median(runs, ['engine', 'terminal_seconds']):.2f} s "
        f"({median(runs, ['engine', 'failed']):.0f} failed)",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="large", choices=["small", "medium", "large"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--engine-plans", type=int, default=1000)
    parser.add_argument("--start-plans", type=int, default=2000,
                        help="distinct plans the start scenario may start")
    parser.add_argument("--engine-timeout", type=int, default=600)
    parser.add_argument("--database", help="an admin PostgreSQL URL (a role allowed to CREATE "
                        "DATABASE); each run gets a fresh database on it. Default: SQLite.")
    parser.add_argument("--json", help="also write every run's raw figures here")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--debug", action="store_true",
                        help="use the debug build (CI's smoke run; figures mean nothing)")
    parser.add_argument("--report-from", metavar="JSON",
                        help="print the report of an earlier run's --json file and stop")
    args = parser.parse_args()
    if args.report_from:
        with open(args.report_from) as handle:
            print(report(args, json.load(handle)))
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    if args.debug:
        use_debug_build()
    if not args.no_build:
        profile = [] if args.debug else ["--release"]
        log(f"building the {'debug' if args.debug else 'release'} binaries")
        subprocess.run(["cargo", "build", *profile, "--locked", "-p", "standby",
                        "-p", "standby-bench-ceiling"], cwd=ROOT, check=True)

    def database_for_run(run):
        name = f"standby_bench_{os.getpid()}_{run}"
        subprocess.run(["psql", args.database, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
        base, _, query = args.database.partition("?")
        base = base.rsplit("/", 1)[0] + "/" + name
        return base + ("?" + query if query else "")

    args.database_for_run = database_for_run
    runs = [one_run(args, run) for run in range(args.runs)]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(runs, handle, indent=2)
    print(report(args, runs))


if __name__ == "__main__":
    main()
