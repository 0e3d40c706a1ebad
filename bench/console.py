#!/usr/bin/env python3
"""The web console under load: its pages on a generated fleet, beside the API's reads of the
same data in the same run.

    python3 bench/console.py --preset large --runs 3      # the figures in bench/README.md
    python3 bench/console.py --preset small --runs 1 --seconds 1 --debug   # a smoke run

It reuses bench/run.py (release build, the fleet generated once per preset under
target/bench-fleets, a fresh copy per run, wrk over loopback), signs in through the console's
form, and measures each page with wrk carrying the session cookie. The console keeps no response
cache, so every page is computed afresh: it is compared with the API's plan list both as a
cache hit and as a miss (each request with its own ignored parameter).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: build, fleets, server, wrk)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def sign_in(base):
    """The console's form, as a browser sends it: the session cookie's value."""
    opener = urllib.request.build_opener(NoRedirect)
    with opener.open(base + "/login") as response:
        login_cookie = re.search(r"standby_login=([^;]+)", response.headers["Set-Cookie"]).group(1)
        page = response.read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": run.ADMIN, "password": run.PASSWORD, "csrf": csrf,
                                   "next": "/plans"}).encode()
    request = urllib.request.Request(base + "/login", data=form,
                                     headers={"Cookie": f"standby_login={login_cookie}"})
    try:
        opener.open(request)
    except urllib.error.HTTPError as answer:  # the 303 to /plans
        if answer.code != 303:
            raise SystemExit(f"sign-in answered {answer.code}")
        cookies = answer.headers.get_all("Set-Cookie")
        return next(re.search(r"standby_session=([^;]+)", c).group(1)
                    for c in cookies if c.startswith("standby_session="))
    raise SystemExit("sign-in did not redirect")


def one_run(args, index):
    workdir = tempfile.mkdtemp(prefix="standby-console-bench-")
    try:
        data = os.path.join(workdir, "data")
        shutil.copytree(run.generated_sqlite(args.preset), data)
        os.sync()
        log_path = os.path.join(tempfile.gettempdir(), f"standby-console-bench-{index + 1}.log")
        process, base, startup = run.start_server(args, ["--data-dir", data], log_path)
        run.log(f"run {index + 1}: ready in {startup:.2f} s")
        try:
            token = run.token_of(base)
            cookie = f"Cookie: standby_session={sign_in(base)}"
            plan = run.get_json(base, run.PLANS, token, {"limit": "1"})["data"][0]["instanceUid"]
            filtered = urllib.parse.urlencode([("status", "Ready"), ("type", "Cloud"),
                                               ("sort", "vms"), ("dir", "desc"), ("per", "100")])
            api_page = base + run.PLANS + "?limit=50"
            # The same queries as the console's filtered page and page 500, through the API.
            api_filtered = base + run.PLANS + "?" + urllib.parse.urlencode({
                "filter": json.dumps([
                    {"property": "status", "operation": "in", "value": ["Ready"]},
                    {"property": "type", "operation": "in", "value": ["Cloud"]}]),
                "sort": json.dumps([{"property": "objectsCount", "direction": "descending"}]),
                "limit": "100"})
            api_page_500 = base + run.PLANS + "?limit=50&offset=24950"
            scenarios = [
                ("console_plans", base + "/plans", {"headers": [cookie]}),
                ("console_plans_filtered_sorted", base + "/plans?" + filtered, {"headers": [cookie]}),
                ("console_plans_name_search", base + "/plans?q=SQL-0004", {"headers": [cookie]}),
                ("console_plans_page_500", base + "/plans?page=500", {"headers": [cookie]}),
                ("console_plan", f"{base}/plans/{plan}", {"headers": [cookie]}),
                ("api_plans_cached", api_page, {"token": token}),
                ("api_plans_uncached", api_page, {"token": token, "bust": True}),
                ("api_plans_filtered_sorted_uncached", api_filtered, {"token": token, "bust": True}),
                ("api_plans_page_500_uncached", api_page_500, {"token": token, "bust": True}),
            ]
            figures = {"startup_seconds": startup}
            for name, url, options in scenarios:
                result = run.wrk(url, options.get("token"), args.seconds, args.connections,
                                 bust=options.get("bust", False), headers=options.get("headers", ()))
                if result["non2xx"] or result["socket_errors"]:
                    raise SystemExit(f"{name}: {result}")
                figures[name] = result
                run.log(f"run {index + 1}: {name}: {result['rps']:.0f} req/s, "
                        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
            return figures
        finally:
            run.stop(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="large", choices=["small", "medium", "large"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", help="also write every run's raw figures here")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--debug", action="store_true", help="use the debug build (smoke runs)")
    args = parser.parse_args()
    if args.debug:
        run.use_debug_build()
    elif not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "standby"], cwd=run.ROOT, check=True)
    runs = [one_run(args, index) for index in range(args.runs)]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"preset": args.preset, "runs": runs}, handle, indent=1)
    names = [name for name in runs[0] if name != "startup_seconds"]
    print(f"{args.preset} fleet, {args.runs} runs, {args.connections} connections, medians")
    print(f"{'scenario':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs API uncached':>16}")
    uncached = statistics.median(r["api_plans_uncached"]["rps"] for r in runs)
    for name in names:
        rps = statistics.median(r[name]["rps"] for r in runs)
        p50 = statistics.median(r[name]["p50_ms"] for r in runs)
        p99 = statistics.median(r[name]["p99_ms"] for r in runs)
        print(f"{name:34} {rps:9.0f} {p50:8.1f} {p99:8.1f} {rps / uncached:15.2f}x")


if __name__ == "__main__":
    main()
