#!/usr/bin/env python3
"""Reads computed afresh, and reads while plans fail over: builds and stores side by side.

    python3 bench/reads.py --binary /tmp/standby-before --binary target/release/standby \\
        --preset large --rounds 3                              # before and after, SQLite
    python3 bench/reads.py --binary target/release/standby --preset large --rounds 3 \\
        --store sqlite --store postgres --database postgres://USER:PASS@127.0.0.1/postgres \\
        --template-database standby_bench_large                # SQLite and PostgreSQL
    python3 bench/reads.py --binary target/debug/standby --preset small --rounds 1 --seconds 1 \\
        --debug                                                # the CI smoke run

For each round and each binary and store in turn (so that a drift of the machine hits all
alike), it copies the preset's fleet (SQLite, generated once under target/bench-fleets by
bench/run.py's code), or for PostgreSQL (--database, an admin URL) generates it into a fresh
database, or copies a database holding it (--template-database: `CREATE DATABASE ... TEMPLATE`,
11 s for the large fleet against 213 s to generate it). Both stores get the same fleet (the
generator is seeded). It starts `standby serve` with boots of 5 to 15 s and measures with wrk
(2 threads, 32 connections, over loopback):

- the plan list (limit 100) from the response cache; then, each computed afresh (every request
  with its own ignored `_` parameter) with nothing running: the plan list, the list filtered on
  status and sorted on name, one plan, page 500 (limit 50, offset 24,950), and the list filtered
  on status and type and sorted on VMs (the console's slow shapes);
- the plan list's first page (cached when nothing it shows changed) while `--failover-plans`
  plans further down the list (offset 1000 on) fail over in test mode: every VM step is a write;
- the ceiling (bench/ceiling, a fixed body of a 100-plan page's size) once per round.

Figures are medians over the rounds, with the ratio to the ceiling of the same round.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: fleets, server helpers, wrk)

READY = json.dumps([{"property": "status", "operation": "equals", "value": "Ready"}])
SORT_NAME = json.dumps([{"property": "name", "direction": "ascending"}])
READY_CLOUD = json.dumps([{"property": "status", "operation": "equals", "value": "Ready"},
                          {"property": "type", "operation": "equals", "value": "Cloud"}])
SORT_VMS = json.dumps([{"property": "objectsCount", "direction": "descending"}])


def start(binary, store_flags, log_path, boot_ms):
    env = dict(os.environ, STANDBY_ADMIN_USER=run.ADMIN, STANDBY_ADMIN_PASSWORD=run.PASSWORD,
               RUST_LOG="warn")
    command = [binary, "serve", "--listen", f"127.0.0.1:{run.STANDBY_PORT}", *store_flags,
               "--throttle-requests-per-minute", "100000000", "--throttle-concurrent", "100000",
               "--sim-boot-ms", boot_ms, "--max-page-size", "500", "--workers", "64",
               "--max-parallel-boots", "10"]
    run.ensure_port_free(run.STANDBY_PORT)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=open(log_path, "w"))
    base = f"http://127.0.0.1:{run.STANDBY_PORT}"
    run.wait_ready(base, process)
    return process, base


def cache_outcomes(base):
    """Hits and misses of the plan list (builds that count them; else None)."""
    status, body = run.http("GET", base + "/metrics")
    hits = misses = None
    for line in body.decode().splitlines():
        if line.startswith("standby_response_cache_total") and 'read="plans"' in line:
            value = float(line.rsplit(" ", 1)[1])
            if 'outcome="hit"' in line:
                hits = value
            elif 'outcome="miss"' in line:
                misses = value
    return hits, misses


def one(binary, store, args, workdir):
    data_flags = []
    if store == "postgres":
        url = args.fresh_database()
        data_flags = ["--database", url]
        if not args.template_database:
            subprocess.run([binary, "fleet", "generate", "--preset", args.preset, *data_flags],
                           check=True, stdout=subprocess.DEVNULL)
    else:
        data = os.path.join(workdir, "data")
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(run.generated_sqlite(args.preset), data)
        os.sync()
        data_flags = ["--data-dir", data]
    process, base = start(binary, data_flags, os.path.join(workdir, "server.log"), args.boot_ms)
    try:
        token = run.token_of(base)
        plans = base + run.PLANS
        first = run.get_json(base, run.PLANS, token, {"limit": "100"})
        plan = first["data"][0]["instanceUid"]
        figures = {"plans_list_cached": run.wrk(plans + "?limit=100", token, args.seconds,
                                                args.connections)}
        scenarios = [
            ("plans_list_uncached", plans + "?limit=100"),
            ("plans_filtered_sorted_uncached", plans + "?" + urllib.parse.urlencode(
                {"limit": "100", "filter": READY, "sort": SORT_NAME})),
            ("get_plan_uncached", f"{plans}/{plan}"),
            # The console's slow shapes (bench/console.py): a deep page, and a filter with a
            # sort no index serves.
            ("plans_page_500_uncached", plans + "?limit=50&offset=24950"),
            ("plans_filtered_sorted_vms_uncached", plans + "?" + urllib.parse.urlencode({
                "limit": "100", "filter": READY_CLOUD, "sort": SORT_VMS})),
        ]
        for name, url in scenarios:
            figures[name] = run.wrk(url, token, args.seconds, args.connections, bust=True)
            run.settle(base, token, plan)
        # Plans further down the list fail over while the first page is read.
        ready = run.get_json(base, run.PLANS, token, {
            "filter": READY, "limit": str(args.failover_plans), "offset": "1000",
            "select": json.dumps([{"propertyPath": "instanceUid"}])})
        uids = [p["instanceUid"] for p in ready["data"]]
        hits_before, misses_before = cache_outcomes(base)
        for uid in uids:
            status, body = run.http("POST", f"{plans}/{uid}/start?test=true", token)
            if status != 200:
                raise SystemExit(f"start answered {status}: {body[:200]!r}")
        during = run.wrk(plans + "?limit=100", token, args.seconds, args.connections)
        hits, misses = cache_outcomes(base)
        if hits is not None:
            during["hits"] = hits - (hits_before or 0)
            during["misses"] = misses - (misses_before or 0)
        running = run.get_json(base, run.PLANS, token, run.RUNNING)["meta"]["pagingInfo"]["total"]
        during["still_running_at_end"] = running
        figures["plans_list_during_failover"] = during
        return figures
    finally:
        run.stop(process)


def ceiling(args, page_bytes=41926):
    run.ensure_port_free(run.CEILING_PORT)
    process = subprocess.Popen([run.CEILING, "--listen", f"127.0.0.1:{run.CEILING_PORT}",
                                "--bytes", str(page_bytes)], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        return run.wrk(f"http://127.0.0.1:{run.CEILING_PORT}/", None, args.seconds,
                       args.connections)
    finally:
        process.terminate()
        process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", action="append", required=True)
    parser.add_argument("--preset", default="large", choices=["small", "medium", "large"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--failover-plans", type=int, default=100)
    parser.add_argument("--boot-ms", default="5000-15000")
    parser.add_argument("--database", help="an admin PostgreSQL URL; a fresh database per run")
    parser.add_argument("--store", action="append", choices=["sqlite", "postgres"],
                        help="run each binary on each store given (default: postgres with "
                             "--database, else sqlite); both compare them on one fleet")
    parser.add_argument("--template-database",
                        help="with --database: each run's database is a copy of this one (the "
                             "preset's fleet, generated once with `standby fleet generate`) "
                             "instead of a fleet generated per run")
    parser.add_argument("--json")
    parser.add_argument("--debug", action="store_true",
                        help="the debug build's ceiling (smoke runs with a debug --binary)")
    args = parser.parse_args()
    if args.debug:
        run.use_debug_build()
    stores = args.store or ["postgres" if args.database else "sqlite"]
    if "postgres" in stores and not args.database:
        parser.error("--store postgres needs --database")
    if args.template_database and not args.database:
        parser.error("--template-database needs --database")
    if len(set(args.binary)) != len(args.binary) or len(set(stores)) != len(stores):
        parser.error("each --binary and --store once (each is a column of the report)")
    if args.database:
        base_url, _, _ = args.database.rpartition("/")
        counter = iter(range(1_000_000))

        def fresh_database():
            name = f"standby_reads_{os.getpid()}_{next(counter)}"
            template = f" TEMPLATE {args.template_database}" if args.template_database else ""
            subprocess.run(["psql", args.database, "-q", "-c",
                            f"CREATE DATABASE {name}{template}"], check=True)
            args.created.append(name)
            return f"{base_url}/{name}"

        args.fresh_database = fresh_database
    args.created = []
    contenders = [(binary, store) for binary in args.binary for store in stores]
    label = (lambda binary, store: binary) if len(stores) == 1 else (
        lambda binary, store: f"{binary} on {store}")
    labels = [label(binary, store) for binary, store in contenders]
    rounds = []
    workdir = tempfile.mkdtemp(prefix="standby-reads-")
    try:
        for round_index in range(args.rounds):
            entry = {"ceiling": ceiling(args)}
            for (binary, store), name in zip(contenders, labels):
                run.log(f"round {round_index + 1}: {name}")
                try:
                    entry[name] = one(binary, store, args, workdir)
                finally:
                    # A copy of the large fleet is 3 GB: one at a time, and none left behind.
                    while args.created:
                        subprocess.run(["psql", args.database, "-q", "-c",
                                        f"DROP DATABASE {args.created.pop()}"], check=True)
            rounds.append(entry)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        kept = {k: v for k, v in vars(args).items() if k not in ("fresh_database", "created")}
        with open(args.json, "w") as handle:
            json.dump({"args": kept, "rounds": rounds}, handle, indent=1)
    ceilings = [r["ceiling"]["rps"] for r in rounds]
    print(f"ceiling: {statistics.median(ceilings):,.0f} req/s (median of {len(rounds)})")
    names = list(rounds[0][labels[0]].keys())
    for name in names:
        print(f"\n{name}")
        for binary in labels:
            series = [r[binary][name] for r in rounds]
            rps = statistics.median(s["rps"] for s in series)
            ratio = statistics.median(s["rps"] / r["ceiling"]["rps"]
                                      for s, r in zip(series, rounds))
            p50 = statistics.median(s["p50_ms"] for s in series)
            p99 = statistics.median(s["p99_ms"] for s in series)
            extra = ""
            if "hits" in series[0]:
                extra = "  hits/misses " + ", ".join(f"{s['hits']:.0f}/{s['misses']:.0f}"
                                                    for s in series)
            print(f"  {binary}: {rps:,.0f} req/s ({ratio:.3f} of the ceiling), "
                  f"p50 {p50:.2f} ms, p99 {p99:.2f} ms{extra}")


if __name__ == "__main__":
    main()
