"""The command line as users run it: check-mapping, explain and outbox (exit codes, output shape)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from receiver.model import Attempt, Event, Target
from receiver.outbox import open_outbox

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def run(*args: str, stdin: bytes | None = None, **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run `receiver ARGS` with only PATH and the given variables in its environment."""
    return subprocess.run([sys.executable, "-m", "receiver", *args], cwd=REPO, env={"PATH": "/usr/bin:/bin", **env},
                          input=stdin, capture_output=True, timeout=60)


def test_check_mapping_accepts_the_example() -> None:
    done = run("check-mapping", "examples/mapping.yaml")
    assert done.returncode == 0
    assert b"ok, 3 route(s)" in done.stdout


def test_check_mapping_lists_every_error_with_its_json_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nroutes:\n  - name: a\n    match: {state: boom}\n    target: {action: ring}\n")
    done = run("check-mapping", str(bad))
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "$.routes[0].match.state" in err and "$.routes[0].target.action" in err


def test_check_mapping_without_a_path_says_how() -> None:
    done = run("check-mapping")
    assert done.returncode == 1
    assert b"RECEIVER_MAPPING" in done.stderr


@pytest.mark.parametrize(
    ("source", "headers", "payload", "state", "routes"),
    [
        ("hcp-terraform", [], "hcp-terraform/run.errored.canceled.sample.json", "canceled", ["hcp-run-problem"]),
        ("hcp-terraform", [], "hcp-terraform/verification.send-a-test.json", "verification", []),
        ("github", ["X-GitHub-Event: workflow_run"], "github/workflow_run.completed.payload.json", "succeeded", []),
        ("github", ["X-GitHub-Event: ping"], "github/ping.payload.json", "verification", []),
        ("gitlab", ["X-Gitlab-Event: Pipeline Hook"], "gitlab/pipeline-hook.json", "succeeded", []),
    ],
)
def test_explain_prints_the_event_and_its_routes(
    source: str, headers: list[str], payload: str, state: str, routes: list[str]
) -> None:
    args = ["explain", "--source", source, "--mapping", "examples/mapping.yaml", str(DATA / payload)]
    for h in headers:
        args += ["--header", h]
    done = run(*args)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["event"]["source"] == source and out["event"]["state"] == state
    assert [r["name"] for r in out["routes"]] == routes
    for r in out["routes"]:
        assert set(r) >= {"name", "action", "contact_list_id", "division_id"}


def test_explain_standard_from_stdin_routes_a_failure() -> None:
    body = json.dumps({"state": "failed", "workspace": "prod", "message": "boom"}).encode()
    done = run("explain", "--source", "standard", "--mapping", "examples/mapping.yaml", "-", stdin=body)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [r["name"] for r in out["routes"]] == ["generic-failed"]
    assert out["routes"][0]["action"] == "add_contact"


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["--source", "hcp-terraform", "-"], b"{not json"),
        (["--source", "standard", "-"], b'{"state": "exploded"}'),
        (["--source", "nope", "-"], b"{}"),
        (["--source", "github", "/does/not/exist.json"], None),
        (["--source", "github", "--header", "no-colon", "-"], b"{}"),
    ],
)
def test_explain_exits_2_on_unreadable_or_invalid_input(args: list[str], stdin: bytes | None) -> None:
    done = run("explain", *args, stdin=stdin)
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr


def test_outbox_list_refuses_an_unknown_state(tmp_path: Path) -> None:
    done = run("outbox", "list", "--state", "lost", RECEIVER_DATABASE_URL=f"sqlite:///{tmp_path / 'o.db'}")
    assert done.returncode == 2
    assert b"unknown state" in done.stderr


def prune(db: Path, *args: str, mapping: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {"RECEIVER_DATABASE_URL": f"sqlite:///{db}"} | ({"RECEIVER_MAPPING": str(mapping)} if mapping else {})
    return run("outbox", "prune", *args, **env)


def test_outbox_prune_deletes_old_finished_jobs_and_keeps_the_rest(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    box = open_outbox(f"sqlite:///{db}")
    target = Target(route="r", action="trigger", division_id="div", contact_list_id="cl")
    day = 86400.0
    for n, (age, state) in enumerate([(40, "delivered"), (40, "dead"), (20, "delivered")]):
        at = time.time() - age * day
        event = Event(source="github", kind="workflow_run", state="failed", dedupe_key=f"change-{n}",
                      delivery_id=f"delivery-{n}")
        box.enqueue(event, [target], event_id=f"event-{n}", request_id=None, mapping_version=None, now=at)
        (job,) = box.claim("cli-test", limit=1, lease_seconds=60, now=at)
        attempt = Attempt(1, at, 1.0, state, 200, correlation_id=None, error_code=None, message=None)
        assert box.record(job, attempt, state=state, now=at)
    box.close()

    done = prune(db)
    assert done.returncode == 0, done.stderr
    assert b"pruned 1 event(s)" in done.stdout and b"with 1 job(s) and 1 attempt(s)" in done.stdout
    box = open_outbox(f"sqlite:///{db}")
    assert [(job.route, job.state) for job in box.list_jobs()] == [("r", "delivered"), ("r", "dead")]
    box.close()


def test_outbox_prune_refuses_less_than_a_week(tmp_path: Path) -> None:
    done = prune(tmp_path / "o.db", "--older-than", "6")
    assert done.returncode == 2
    assert b"at least 7 days" in done.stderr
    assert not (tmp_path / "o.db").exists()


def test_outbox_prune_refuses_less_than_the_mappings_longest_cooldown(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text((REPO / "examples" / "mapping.yaml").read_text().replace("cooldown: 10m", "cooldown: 240h"))
    done = prune(tmp_path / "o.db", "--older-than", "8", mapping=mapping)
    assert done.returncode == 2
    assert b"cooldown of 10 days" in done.stderr
    assert prune(tmp_path / "o.db", "--older-than", "10", mapping=mapping).returncode == 0
