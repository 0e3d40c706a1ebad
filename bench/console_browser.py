#!/usr/bin/env python3
"""The web console in a real browser on a generated fleet: how long an operator waits.

    target/playwright-venv/bin/python bench/console_browser.py --preset large --runs 3 --loads 10
    target/playwright-venv/bin/python bench/console_browser.py --preset small --loads 2 --debug

(target/playwright-venv is the Python with Playwright that .ci/run sets up.) It copies the
preset's SQLite fleet (bench/run.py's, generated once under target/bench-fleets), starts the
release build, signs in through the console's form in Debian's Chromium driven by Playwright
(every host but the server unreachable, as in tests/console/browser.py), and in one tab:

- loads each page --loads times after one warm-up load, reading the browser's Navigation
  Timing: the first byte of the answer (from the request: the server's time), the page parsed
  (DOMContentLoaded) and the load event (from the start of the navigation);
- times what an operator does on the plan table: a name typed into the search box and Enter,
  until the new table is shown; and every row of a 200-row page ticked by "select all", until
  the count beside the bulk buttons says "200 selected".

Figures are medians and 90th percentiles of the loads. The browser, the server and the script
share the machine's 2 cores, as in the other benchmarks.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse

from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: fleets, server helpers)

TIMING = """() => {
  const [n] = performance.getEntriesByType("navigation");
  return {first_byte_ms: n.responseStart - n.requestStart,
          dom_ready_ms: n.domContentLoadedEventEnd - n.startTime,
          loaded_ms: n.loadEventEnd - n.startTime,
          bytes: n.transferSize};
}"""


def launch(playwright, browser_path):
    return playwright.chromium.launch(
        executable_path=browser_path,
        args=["--no-sandbox", "--disable-background-networking", "--disable-component-update",
              "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"],
    )


def sign_in(page, base):
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill(run.ADMIN)
    page.get_by_label("Password").fill(run.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/plans*")


def summary(samples):
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"median": statistics.median(ordered), "p90": p90, "samples": ordered}


def load(page, url, loads):
    """Navigation Timing of `loads` loads of `url` (after one warm-up)."""
    page.goto(url)
    timings = []
    for _ in range(loads):
        page.goto(url, wait_until="load")
        timings.append(page.evaluate(TIMING))
    return {key: summary([t[key] for t in timings]) for key in timings[0]}


def search_by_name(page, base, needle, loads):
    """From the first page: the needle typed into "Name contains", Enter, the new table shown."""
    samples = []
    for _ in range(loads + 1):
        page.goto(f"{base}/plans")
        search = page.get_by_label("Name contains")
        search.fill(needle)
        started = time.perf_counter()
        with page.expect_navigation(wait_until="load"):
            search.press("Enter")
        expect(page.locator("#plans-table tbody tr").first).to_contain_text(needle)
        samples.append((time.perf_counter() - started) * 1000)
    return {"elapsed_ms": summary(samples[1:])}


def select_a_page(page, base, loads):
    """A page of 200 rows (or all a small fleet has): "select all" ticked until the count
    beside the bulk buttons says every row is selected."""
    samples = []
    for _ in range(loads + 1):
        page.goto(f"{base}/plans?per=200")
        rows = page.locator('#plans-table input[name="plan"]').count()
        started = time.perf_counter()
        page.locator("#select-all").check()
        expect(page.locator("#selected-count")).to_have_text(f"{rows} selected")
        samples.append((time.perf_counter() - started) * 1000)
    return {"elapsed_ms": summary(samples[1:])}


def one_run(args, index):
    workdir = tempfile.mkdtemp(prefix="standby-console-browser-")
    try:
        data = os.path.join(workdir, "data")
        shutil.copytree(run.generated_sqlite(args.preset), data)
        os.sync()
        log_path = os.path.join(workdir, "server.log")
        process, base, startup = run.start_server(args, ["--data-dir", data], log_path)
        try:
            token = run.token_of(base)
            first = run.get_json(base, run.PLANS, token, {"limit": "1"})
            plan = first["data"][0]["instanceUid"]
            total = first["meta"]["pagingInfo"]["total"]
            middle = run.get_json(base, run.PLANS, token,
                                  {"limit": "1", "offset": str(min(777, total // 2))})
            # A plan's own number ("00007-07"): the search finds it among the fleet's.
            needle = middle["data"][0]["name"].split()[-1]
            filtered = urllib.parse.urlencode([("status", "Ready"), ("type", "Cloud"),
                                               ("sort", "vms"), ("dir", "desc"), ("per", "100")])
            pages = [
                ("plans", f"{base}/plans"),
                ("plans_200_rows", f"{base}/plans?per=200"),
                ("plans_name_search", f"{base}/plans?q={urllib.parse.quote(needle)}"),
                ("plans_filtered_sorted_vms", f"{base}/plans?{filtered}"),
                ("plans_page_500", f"{base}/plans?page=500"),
                ("plan", f"{base}/plans/{plan}"),
                ("audit", f"{base}/audit"),
            ]
            figures = {"startup_seconds": startup}
            with sync_playwright() as playwright:
                browser = launch(playwright, args.browser)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    sign_in(page, base)
                    for scenario, url in pages:
                        figures[scenario] = load(page, url, args.loads)
                        run.log(f"run {index + 1}: {scenario}: first byte "
                                f"{figures[scenario]['first_byte_ms']['median']:.1f} ms, loaded "
                                f"{figures[scenario]['loaded_ms']['median']:.1f} ms")
                    figures["search_by_name"] = search_by_name(page, base, needle, args.loads)
                    figures["select_200_rows"] = select_a_page(page, base, args.loads)
                finally:
                    browser.close()
            return figures
        finally:
            run.stop(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="large", choices=["small", "medium", "large"])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--browser", default=os.environ.get("STANDBY_TEST_BROWSER",
                                                            "/usr/bin/chromium"))
    parser.add_argument("--json", help="also write every run's raw figures here")
    parser.add_argument("--debug", action="store_true", help="use the debug build (smoke runs)")
    args = parser.parse_args()
    if args.debug:
        run.use_debug_build()
    runs = [one_run(args, index) for index in range(args.runs)]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"preset": args.preset, "loads": args.loads, "runs": runs}, handle, indent=1)
    print(f"{args.preset} fleet, {args.runs} run(s) of {args.loads} loads, medians (p90) in ms")
    print(f"{'page':28} {'first byte':>18} {'DOM ready':>18} {'loaded':>18}")

    def cell(scenario, key):
        values = [r[scenario][key] for r in runs]
        median = statistics.median(v["median"] for v in values)
        p90 = statistics.median(v["p90"] for v in values)
        return f"{median:8.1f} ({p90:6.1f})"

    for scenario in runs[0]:
        if scenario == "startup_seconds":
            continue
        if "elapsed_ms" in runs[0][scenario]:
            print(f"{scenario:28} {'':>18} {'':>18} {cell(scenario, 'elapsed_ms'):>18}")
        else:
            print(f"{scenario:28} {cell(scenario, 'first_byte_ms'):>18} "
                  f"{cell(scenario, 'dom_ready_ms'):>18} {cell(scenario, 'loaded_ms'):>18}")


if __name__ == "__main__":
    main()
