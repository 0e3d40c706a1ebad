#!/usr/bin/env python3
"""The web console in a real browser: Playwright (PyPI) driving Debian's Chromium, with every host
but the server unreachable. Started by crates/standby/tests/console.rs against a server with the
demo fleet; run by hand as

    python3 tests/console/browser.py --base http://127.0.0.1:1280 --password PW --demo-password PW

Each check prints `ok - NAME` or `FAILED - NAME: why`; the last line is `N passed, N failed`.
Screenshots of the main pages, light and dark, go to --shots (the README shows them).
"""

import argparse
import pathlib
import re
import sys
import traceback
import urllib.parse

from playwright.sync_api import expect, sync_playwright

HERE = pathlib.Path(__file__).resolve().parent
AXE = (HERE / "vendor" / "axe.min.js").read_text(encoding="utf-8")

# A run of the fast test simulator ends in seconds; the waits are generous for a loaded CI box.
RUN_TIMEOUT_MS = 120_000


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, function):
        try:
            function()
        except Exception as error:  # noqa: BLE001 - every failure is reported, then the next check runs
            self.failed += 1
            print(f"FAILED - {name}: {error}", flush=True)
            traceback.print_exc()
        else:
            self.passed += 1
            print(f"ok - {name}", flush=True)


def launch(playwright, browser_path):
    return playwright.chromium.launch(
        executable_path=browser_path,
        args=[
            "--no-sandbox",
            "--disable-background-networking",
            "--disable-component-update",
            # Only the server under test answers; any other host fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        ],
    )


def sign_in(page, base, user, password):
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/plans.*"))


def axe_violations(page):
    """Serious and critical axe-core violations on the page as it is now."""
    page.add_script_tag(content=AXE)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def assert_accessible(page, what):
    problems = axe_violations(page)
    assert not problems, f"{what}: {problems}"


def rows_of(page):
    return page.locator("#plans-table tbody tr")


def column_texts(page, index):
    """The text of one column (1-based among the cells after the selection box, if any)."""
    return [text.strip() for text in page.locator(f"#plans-table tbody tr td:nth-child({index})").all_inner_texts()]


def plan_uid_named(page, name):
    link = page.locator("#plans-table a.plan-link", has_text=name).first
    return link.get_attribute("href").rsplit("/", 1)[1]


def api_status(request, base, token, uid):
    response = request.get(
        f"{base}/api/v3/infrastructure/backupServers/failoverplans/{uid}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.ok, response.status
    return response.json()["data"]["status"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--demo-password", required=True, help="the demo users' password")
    parser.add_argument("--browser", default="/usr/bin/chromium")
    parser.add_argument("--shots", default=None, help="where to write screenshots")
    args = parser.parse_args()
    base = args.base.rstrip("/")
    shots = pathlib.Path(args.shots) if args.shots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    checks = Checks()

    with sync_playwright() as playwright:
        browser = launch(playwright, args.browser)
        # axe-core is injected inline, which the console's CSP forbids (as it should): the test
        # context bypasses it; the CSP header itself is checked in crates/standby/tests/console.rs.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        token_response = context.request.post(
            f"{base}/api/v3/token",
            form={"grant_type": "password", "username": args.user, "password": args.password},
        )
        assert token_response.ok
        token = token_response.json()["access_token"]
        state = {}

        def signs_in():
            page.goto(f"{base}/plans?status=Ready")
            # Not signed in: the login form, which returns to the page asked for.
            expect(page.get_by_label("User name")).to_be_visible()
            assert_accessible(page, "login page")
            if shots:
                page.screenshot(path=str(shots / "login-light.png"))
            page.get_by_label("User name").fill(args.user)
            page.get_by_label("Password").fill("not the password")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("alert")).to_contain_text("incorrect")
            page.get_by_label("Password").fill(args.password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(re.compile(r".*/plans\?status=Ready$"))
            cookie = next(c for c in context.cookies() if c["name"] == "standby_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie

        def filters_live_in_the_url():
            query = urllib.parse.urlencode([("status", "Ready"), ("type", "Cloud"), ("q", "cloud dr"), ("sort", "name"), ("dir", "desc")])
            page.goto(f"{base}/plans?{query}")
            statuses = column_texts(page, 2)
            types = column_texts(page, 6)
            names = column_texts(page, 3)
            assert statuses and all(s.endswith("Ready") for s in statuses), statuses
            assert all(t == "Cloud" for t in types), types
            assert all("cloud dr" in n.lower() for n in names), names
            assert names == sorted(names, reverse=True), names
            expect(page.locator('input[name="status"][value="Ready"]')).to_be_checked()
            expect(page.locator('input[name="type"][value="Cloud"]')).to_be_checked()
            expect(page.locator("#q")).to_have_value("cloud dr")
            # A reload shows the same page.
            page.reload()
            assert column_texts(page, 3) == names
            # The form writes the URL: filter by Failed through the checkboxes.
            page.goto(f"{base}/plans")
            page.locator('input[name="status"][value="Failed"]').check()
            page.get_by_role("button", name="Apply").click()
            page.wait_for_url(re.compile(r".*status=Failed.*"))
            assert all(s.endswith("Failed") for s in column_texts(page, 2))
            assert_accessible(page, "plan list")

        def bulk_test_runs_live_without_reload():
            page.goto(f"{base}/plans?status=Ready&type=Local&q=Northwind")
            boxes = page.locator('#plans-table input[name="plan"]')
            assert boxes.count() >= 2, boxes.count()
            names = []
            for index in range(2):
                boxes.nth(index).check()
                names.append(rows_of(page).nth(index).locator("a.plan-link").inner_text())
            expect(page.locator("#selected-count")).to_have_text("2 selected")
            state["bulk"] = [plan_uid_named(page, n) for n in names]
            page.get_by_role("button", name="Test", exact=True).click()
            page.wait_for_url(re.compile(r".*/live\?.*"))
            # The page is never reloaded: this marker would be gone.
            page.evaluate("window.__standbyNoReload = true")
            expect(page.locator("#connection")).to_contain_text("Live", timeout=15_000)
            panels = page.locator("section.run")
            expect(panels).to_have_count(2)
            if shots:
                page.screenshot(path=str(shots / "live-light.png"), full_page=True)
            for uid in state["bulk"]:
                status = page.locator(f'[id="{uid}"] [data-role="run-status"]')
                expect(status).to_contain_text("Success", timeout=RUN_TIMEOUT_MS)
                expect(page.locator(f'[id="{uid}"] [data-role="plan-status"]')).to_contain_text("Success")
            expect(page.locator("#summary")).to_contain_text("2 succeeded")
            assert page.evaluate("window.__standbyNoReload === true"), "the page was reloaded"
            assert_accessible(page, "live view")
            for uid in state["bulk"]:
                assert api_status(context.request, base, token, uid) == "Success"

        def undo_a_test_needs_no_confirmation():
            uid = state["bulk"][0]
            page.goto(f"{base}/plans/{uid}")
            page.get_by_role("button", name="Undo").click()
            page.wait_for_url(re.compile(r".*/live\?plan=.*"))
            expect(page.locator(f'[id="{uid}"] [data-role="plan-status"]')).to_contain_text("Ready", timeout=RUN_TIMEOUT_MS)
            # The other one through the bulk form.
            other = state["bulk"][1]
            page.goto(f"{base}/plans?status=Success")
            page.locator(f'#plans-table input[value="{other}"]').check()
            page.get_by_role("button", name="Undo").click()
            page.wait_for_url(re.compile(r".*/live\?.*"))
            expect(page.locator(f'[id="{other}"] [data-role="plan-status"]')).to_contain_text("Ready", timeout=RUN_TIMEOUT_MS)

        def a_production_start_needs_confirmation():
            page.goto(f"{base}/plans?status=Ready&q=Fabrikam%20-%20Tier%202%20-%20Web")
            uid = plan_uid_named(page, "Fabrikam - Tier 2 - Web")
            page.goto(f"{base}/plans/{uid}")
            assert_accessible(page, "plan page")
            if shots:
                page.screenshot(path=str(shots / "plan-light.png"), full_page=True)
            page.get_by_role("button", name="Start", exact=True).click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("production failover")
            expect(page.get_by_text("PRODUCTION").first).to_be_visible()
            assert_accessible(page, "confirmation page")
            if shots:
                page.screenshot(path=str(shots / "confirm-light.png"), full_page=True)
            # Nothing has started yet.
            assert api_status(context.request, base, token, uid) == "Ready"
            page.get_by_role("button", name="Confirm").click()
            page.wait_for_url(re.compile(r".*/live\?plan=.*"))
            expect(page.locator(f'[id="{uid}"] [data-role="plan-status"]')).to_contain_text("Completed", timeout=RUN_TIMEOUT_MS)
            # Undoing it discards production changes: confirmed too.
            page.goto(f"{base}/plans/{uid}")
            page.get_by_role("button", name="Undo").click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Undo the production failover")
            assert api_status(context.request, base, token, uid) == "Completed"
            page.get_by_role("button", name="Confirm").click()
            expect(page.locator(f'[id="{uid}"] [data-role="plan-status"]')).to_contain_text("Ready", timeout=RUN_TIMEOUT_MS)

        def a_point_in_time_is_resolved_and_previewed():
            page.goto(f"{base}/plans?q=Contoso%20-%20ERP")
            uid = plan_uid_named(page, "Contoso - ERP")
            page.goto(f"{base}/plans/{uid}")
            page.get_by_label("Newest at or before a point in time").check()
            page.get_by_label("Date and time").fill("2026-11-26T12:00:00")
            page.get_by_label("Time zone of that time").select_option("UTC")
            page.get_by_role("button", name="Preview").click()
            expect(page.locator("#resolved")).to_contain_text("Resolved to 2026-11-26T12:00:00Z (UTC)")
            # Each VM's point is at or before the instant.
            points = [t for t in page.locator("#vms tbody td:nth-child(4) time").evaluate_all("els => els.map(e => e.getAttribute('datetime'))")]
            assert points and all(p <= "2026-11-26T12:00:00Z" for p in points), points

        def times_toggle_between_utc_and_local():
            page.goto(f"{base}/plans?status=Completed")
            first = page.locator("#plans-table time").first
            utc = first.get_attribute("datetime")
            expect(first).to_have_text(utc)
            page.get_by_role("button", name=re.compile("Times: UTC")).click()
            shown = first.inner_text()
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$", shown), shown
            page.reload()
            assert first.inner_text() == shown, "the choice is kept"
            page.keyboard.press("t")
            expect(first).to_have_text(utc)

        def keyboard_and_focus():
            page.goto(f"{base}/plans")
            page.keyboard.press("?")
            expect(page.locator("#shortcuts")).to_be_visible()
            page.keyboard.press("Escape")
            expect(page.locator("#shortcuts")).to_be_hidden()
            page.keyboard.press("/")
            assert page.evaluate("document.activeElement.id") == "q"
            page.locator("body").click(position={"x": 5, "y": 5})
            page.keyboard.press("j")
            page.keyboard.press("j")
            expect(page.locator("#plans-table tbody tr.current")).to_have_count(1)
            page.keyboard.press("x")
            expect(page.locator("#selected-count")).to_have_text("1 selected")
            # Focus is visible: the focused link draws an outline.
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline not in ("none", ""), outline

        def dark_mode_and_screenshots():
            page.goto(f"{base}/plans")
            page.get_by_role("button", name=re.compile("Theme")).click()  # light
            page.get_by_role("button", name=re.compile("Theme")).click()  # dark
            assert page.evaluate("document.documentElement.dataset.theme") == "dark"
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(17, 20, 24)", background
            assert_accessible(page, "plan list, dark")
            if shots:
                page.screenshot(path=str(shots / "plans-dark.png"))
                uid = state["bulk"][0]
                page.goto(f"{base}/plans/{uid}")
                page.screenshot(path=str(shots / "plan-dark.png"), full_page=True)
                page.goto(f"{base}/live?plan={uid}")
                page.screenshot(path=str(shots / "live-dark.png"), full_page=True)
            page.get_by_role("button", name=re.compile("Theme")).click()  # system
            page.goto(f"{base}/plans")
            if shots:
                page.screenshot(path=str(shots / "plans-light.png"))

        def other_pages_are_accessible():
            for path in ["/actions", "/servers", "/audit", "/drills"]:
                page.goto(f"{base}{path}")
                assert_accessible(page, path)
            uid = state["bulk"][0]
            page.goto(f"{base}/plans/{uid}")
            page.locator("#history a", has_text="Test failover").first.click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Test failover")
            assert_accessible(page, "run page")

        def usable_on_a_phone():
            phone = browser.new_context(viewport={"width": 390, "height": 844})
            small = phone.new_page()
            sign_in(small, base, args.user, args.password)
            small.goto(f"{base}/plans")
            overflow = small.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"the page is {overflow}px wider than the screen"
            expect(small.get_by_role("button", name="Test", exact=True)).to_be_visible()
            if shots:
                small.screenshot(path=str(shots / "plans-phone.png"))
            phone.close()

        def a_read_only_user_finds_no_controls():
            viewer = browser.new_context(viewport={"width": 1280, "height": 900})
            view = viewer.new_page()
            sign_in(view, base, "noc-readonly", args.demo_password)
            assert rows_of(view).count() > 0
            for name in ["Start", "Test", "Undo"]:
                expect(view.get_by_role("button", name=name, exact=True)).to_have_count(0)
            view.locator("#plans-table a.plan-link").first.click()
            view.wait_for_url(re.compile(r".*/plans/[0-9a-f-]+$"))
            for name in ["Start", "Test", "Undo"]:
                expect(view.get_by_role("button", name=name, exact=True)).to_have_count(0)
            expect(view.get_by_text("can read plans but not run them")).to_be_visible()
            viewer.close()

        def a_company_user_sees_only_its_plans():
            tenant = browser.new_context(viewport={"width": 1280, "height": 900})
            view = tenant.new_page()
            sign_in(view, base, "contoso-owner", args.demo_password)
            view.goto(f"{base}/plans?per=200")
            companies = set(column_texts(view, 5))
            assert companies == {"Contoso Ltd"}, companies
            # Another company's plan is not found, even by its UID.
            page.goto(f"{base}/plans?q=Fabrikam%20-%20ERP")
            foreign = plan_uid_named(page, "Fabrikam - ERP")
            response = view.goto(f"{base}/plans/{foreign}")
            assert response.status == 404, response.status
            tenant.close()

        def sign_out_ends_the_session():
            page.goto(f"{base}/plans")
            page.get_by_role("button", name="Log out").click()
            page.wait_for_url(re.compile(r".*/login$"))
            page.goto(f"{base}/plans")
            expect(page.get_by_label("User name")).to_be_visible()

        for name, check in [
            ("sign in (wrong password refused, HttpOnly SameSite=Strict cookie)", signs_in),
            ("filters, sort and paging live in the URL", filters_live_in_the_url),
            ("bulk-selected test failovers reach Success live, without a reload", bulk_test_runs_live_without_reload),
            ("undo of a test needs no confirmation", undo_a_test_needs_no_confirmation),
            ("a production start and its undo need Confirm", a_production_start_needs_confirmation),
            ("a point in time is resolved in its zone and previewed", a_point_in_time_is_resolved_and_previewed),
            ("times toggle between UTC and local, always with a zone", times_toggle_between_utc_and_local),
            ("keyboard shortcuts and visible focus", keyboard_and_focus),
            ("dark mode", dark_mode_and_screenshots),
            ("actions, servers, audit and run pages pass axe-core", other_pages_are_accessible),
            ("usable at phone width", usable_on_a_phone),
            ("a read-only user finds no Start, Test or Undo", a_read_only_user_finds_no_controls),
            ("a company user sees only its plans", a_company_user_sees_only_its_plans),
            ("log out ends the session", sign_out_ends_the_session),
        ]:
            checks.run(name, check)
        browser.close()

    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
