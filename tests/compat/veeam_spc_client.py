"""Drives a running Standby with the `veeam-spc` PyPI client (module veeam_spc.v3_6_1), a client
generated from Veeam's own OpenAPI document: if it can log in, list, read, page and patch, the
wire format is what VSPC clients expect.

Usage: python veeam_spc_client.py BASE_URL USER PASSWORD
Prints one line per check and a final "N passed, N failed" line; exits non-zero on a failure.
"""

import datetime
import sys
import time
import uuid

from veeam_spc.v3_6_1.client import AuthenticatedClient, Client
from veeam_spc.v3_6_1.api.authentication import o_auth_2_issue_token
from veeam_spc.v3_6_1.api.backup_server_failover_plans import (
    get_backup_failover_plan,
    get_backup_failover_plan_objects,
    get_backup_failover_plans,
    get_backup_failover_plans_by_server,
    get_backup_failover_plans_objects,
    get_backup_failover_plans_objects_by_server,
    patch_backup_failover_plan,
    start_backup_failover_plan,
    undo_backup_failover_plan,
)
from veeam_spc.v3_6_1.models import (
    BackupFailoverPlan,
    ErrorResponse,
    JsonPatch,
    JsonPatchOp,
    OAuth2IssueTokenBody,
    OAuth2IssueTokenBodyGrantType,
    OAuth2Result,
)
from veeam_spc.v3_6_1.types import UNSET

passed = 0
failed = 0


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def wait_for(client, plan_uid, statuses, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        plan = get_backup_failover_plan.sync(plan_uid, client=client, x_client_version="3.6.1").data
        if plan.status.value in statuses or time.monotonic() > deadline:
            return plan
        time.sleep(0.2)


def main(base, user, password):
    api = base.rstrip("/") + "/api/v3"
    anonymous = Client(base_url=api, raise_on_unexpected_status=True)

    token = o_auth_2_issue_token.sync(
        client=anonymous,
        body=OAuth2IssueTokenBody(grant_type=OAuth2IssueTokenBodyGrantType.PASSWORD, username=user, password=password),
        x_client_version="3.6.1",
    )
    check("token: password grant parses as OAuth2Result", isinstance(token, OAuth2Result), repr(token))
    check("token: expires_in is 3600", token.expires_in == 3600)
    refreshed = o_auth_2_issue_token.sync(
        client=anonymous,
        body=OAuth2IssueTokenBody(grant_type=OAuth2IssueTokenBodyGrantType.REFRESH_TOKEN, refresh_token=token.refresh_token),
    )
    check("token: refresh grant returns a new pair", isinstance(refreshed, OAuth2Result) and refreshed.access_token != token.access_token)
    wrong = o_auth_2_issue_token.sync_detailed(
        client=anonymous,
        body=OAuth2IssueTokenBody(grant_type=OAuth2IssueTokenBodyGrantType.PASSWORD, username=user, password="wrong"),
    )
    check("token: a wrong password is a 400 OAuth2Error", wrong.status_code == 400 and wrong.parsed.error is not None)

    client = AuthenticatedClient(base_url=api, token=refreshed.access_token, raise_on_unexpected_status=True)
    version = "3.6.1"

    first = get_backup_failover_plans.sync(client=client, limit=5, offset=0, x_client_version=version)
    check("list: parses, 5 plans on the first page", first is not None and len(first.data) == 5, repr(first)[:300])
    total = first.meta.paging_info.total
    check("list: pagingInfo total/count/offset", total >= 40 and first.meta.paging_info.count == 5 and first.meta.paging_info.offset == 0)
    seen = []
    offset = 0
    while offset < total:
        page = get_backup_failover_plans.sync(client=client, limit=7, offset=offset, x_client_version=version)
        seen.extend(plan.instance_uid for plan in page.data)
        offset += 7
    check("list: paging visits every plan exactly once", len(seen) == total and len(set(seen)) == total)
    statuses = {plan.status.value for plan in get_backup_failover_plans.sync(client=client, limit=500, x_client_version=version).data}
    check("list: demo statuses parse as the client's enum", {"Ready", "Completed", "Failed"} <= statuses, repr(statuses))

    plan = first.data[0]
    one = get_backup_failover_plan.sync(plan.instance_uid, client=client, x_client_version=version)
    check("get: the same plan by UID", one is not None and one.data.instance_uid == plan.instance_uid and one.data.name == plan.name)
    by_server = get_backup_failover_plans_by_server.sync(plan.backup_server_uid, client=client, limit=100, x_client_version=version)
    check("list by server: every plan is on that server", by_server.data and all(p.backup_server_uid == plan.backup_server_uid for p in by_server.data))

    objects = get_backup_failover_plan_objects.sync(plan.instance_uid, client=client, limit=100, x_client_version=version)
    check("objects of a plan: count matches objectsCount", len(objects.data) == plan.objects_count, f"{len(objects.data)} vs {plan.objects_count}")
    all_objects = get_backup_failover_plans_objects.sync(client=client, limit=500, x_client_version=version)
    check("all objects: parse, total >= 300", all_objects.meta.paging_info.total >= 300)
    with_session = [o for o in all_objects.data if o.restore_session is not UNSET and o.restore_session is not None]
    check("all objects: restore sessions of earlier runs parse", len(with_session) > 0)
    server_objects = get_backup_failover_plans_objects_by_server.sync(plan.backup_server_uid, client=client, limit=500, x_client_version=version)
    check("objects by server: every VM is on that server", all(o.backup_server_uid == plan.backup_server_uid for o in server_objects.data))

    command = f"C:\\Scripts\\pre-{uuid.uuid4().hex[:8]}.ps1"
    patched = patch_backup_failover_plan.sync(
        plan.instance_uid,
        client=client,
        body=[JsonPatch(op=JsonPatchOp.REPLACE, path="/preFailoverCommand", value=command)],
        # The generated client puts the value in a header as is, so it must be a string.
        x_request_id=str(uuid.uuid4()),
        x_client_version=version,
    )
    check("patch: 200 body shows the new command", patched is not None and patched.data.pre_failover_command == command, repr(patched)[:300])
    check("patch: the script flag follows the command", patched.data.pre_failover_script_enabled is True)
    again = get_backup_failover_plan.sync(plan.instance_uid, client=client, x_client_version=version)
    check("patch: a later GET sees the change", again.data.pre_failover_command == command)
    refused = patch_backup_failover_plan.sync(
        plan.instance_uid, client=client, body=[JsonPatch(op=JsonPatchOp.REPLACE, path="/name", value="renamed")], x_client_version=version
    )
    check(
        "patch: a read-only property is refused with code 1001",
        isinstance(refused, ErrorResponse) and refused.errors[0].code == 1001,
        repr(refused)[:300],
    )

    missing = get_backup_failover_plan.sync(uuid.uuid4(), client=client, x_client_version=version)
    check("get: an unknown plan parses as an ErrorResponse 404", isinstance(missing, ErrorResponse) and missing.errors[0].code == 404)

    ready = [
        p for p in get_backup_failover_plans.sync(client=client, limit=500, x_client_version=version).data
        if p.status.value == "Ready" and p.type_.value != "Local"
    ]
    target = ready[0]
    yesterday = datetime.date.today() - datetime.timedelta(days=1)
    started = start_backup_failover_plan.sync_detailed(
        target.instance_uid, client=client, date_time=yesterday, test=True, x_client_version=version
    )
    check("start: a test failover to yesterday is accepted", started.status_code == 200, f"{started.status_code} {started.content[:200]!r}")
    check("start: Location names the async action", "/api/v3/asyncActions/" in started.headers.get("location", ""))
    plan = wait_for(client, target.instance_uid, {"Success", "Failed"})
    check("start: the test run ends in Success", plan.status.value == "Success", plan.status.value)
    check("start: lastSession parses with its messages", plan.last_session.status.value == "Success" and len(plan.last_session.detailed_messages) >= plan.objects_count)
    vms = get_backup_failover_plan_objects.sync(target.instance_uid, client=client, limit=100, x_client_version=version).data
    chosen = {vm.restore_session.restore_point_date_time for vm in vms}
    check(
        "start: every VM got a restore point at or before the chosen day",
        all(vm.restore_session.backup_status.value == "Success" for vm in vms)
        and all(at is not None and at.date() <= yesterday for at in chosen),
        repr(chosen),
    )
    again = start_backup_failover_plan.sync(target.instance_uid, client=client, x_client_version=version)
    check("start: a second start is refused with 409 code 1000", isinstance(again, ErrorResponse) and again.errors[0].code == 1000)
    undone = undo_backup_failover_plan.sync_detailed(target.instance_uid, client=client, x_client_version=version)
    check("undo: accepted", undone.status_code == 200, f"{undone.status_code} {undone.content[:200]!r}")
    plan = wait_for(client, target.instance_uid, {"Ready", "UndoFailed"})
    check("undo: the plan is Ready again", plan.status.value == "Ready", plan.status.value)
    refused = undo_backup_failover_plan.sync_detailed(target.instance_uid, client=client, x_client_version=version)
    check("undo: a Ready plan is refused with 409 code 1000", refused.status_code == 409 and refused.parsed.errors[0].code == 1000)

    old = get_backup_failover_plans.sync(client=client, limit=3, x_client_version="3.6")
    check("version 3.6: served without lastSession", old is not None and all(p.last_session is UNSET for p in old.data))

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
