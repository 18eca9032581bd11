"""End to end per sender: a signed delivery leads to one platform action, its redelivery to none."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from receiver.sandbox.server import SandboxServer
from receiver.verify import standard_signature
from tests.helpers.receiver import ReceiverProcess, hcp_headers, hcp_run_body, wait_for
from tests.helpers.sandbox import sandbox_config

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent / "data"
GITHUB_SECRET = "e2e-github-secret"
GITLAB_TOKEN = "e2e-gitlab-token"
STANDARD_SECRET = "whsec_ZTJlLXN0YW5kYXJkLXdlYmhvb2tzLXNlY3JldCEhIQ=="

Post = tuple[bytes, dict[str, str]]


def github(delivery: str) -> Post:
    body = (DATA / "github" / "workflow_run.completed.payload.json").read_bytes()
    sig = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-GitHub-Event": "workflow_run",
                  "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sig}


def gitlab(delivery: str) -> Post:
    body = (DATA / "gitlab" / "pipeline-hook.json").read_bytes()
    return body, {"Content-Type": "application/json", "X-Gitlab-Event": "Pipeline Hook",
                  "X-Gitlab-Token": GITLAB_TOKEN, "X-Gitlab-Event-UUID": delivery}


def standard(delivery: str) -> Post:
    body = json.dumps({"state": "failed", "workspace": "prod-network", "run_id": "b-1"}).encode()
    ts = str(int(time.time()))  # a redelivery is re-signed with a new timestamp, same webhook-id
    return body, {"Content-Type": "application/json", "webhook-id": delivery, "webhook-timestamp": ts,
                  "webhook-signature": standard_signature(STANDARD_SECRET, delivery, ts, body)}


def hcp(delivery: str) -> Post:
    body = hcp_run_body("run-sources")
    return body, hcp_headers(body)


SENDERS: dict[str, Callable[[str], Post]] = {"hcp-terraform": hcp, "github": github, "gitlab": gitlab,
                                            "standard": standard}


@pytest.fixture(name="receiver", scope="module")
def _receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReceiverProcess, SandboxServer]]:
    tmp = tmp_path_factory.mktemp("sources")
    mapping = tmp / "mapping.json"
    routes = [{"name": f"any-{s}", "match": {"source": s},
               "target": {"action": "trigger", "contact_list_id": "cl-oncall", "division_id": "div-ops"}}
              for s in SENDERS]
    mapping.write_text(json.dumps({"version": 1, "routes": routes}))
    with SandboxServer(sandbox_config()) as platform:
        env = {"RECEIVER_SECRET_GITHUB": GITHUB_SECRET, "RECEIVER_SECRET_GITLAB": GITLAB_TOKEN,
               "RECEIVER_SECRET_STANDARD": STANDARD_SECRET}
        receiver = ReceiverProcess(tmp, sandbox_url=platform.url, mapping=mapping, env=env).start()
        try:
            yield receiver, platform
        finally:
            receiver.stop()


@pytest.mark.parametrize("source", list(SENDERS))
def test_one_action_per_delivery_and_none_for_its_redelivery(
    source: str, receiver: tuple[ReceiverProcess, SandboxServer]
) -> None:
    proc, platform = receiver
    requests.post(f"{platform.url}/sandbox/reset", timeout=5).raise_for_status()
    delivery = f"d-{uuid.uuid4()}"
    body, headers = SENDERS[source](delivery)
    first = proc.post(body, headers, source=source)
    assert first.status_code == 202, first.text
    entries = wait_for(lambda: requests.get(f"{platform.url}/sandbox/journal", timeout=5).json())
    assert len(entries) == 1 and entries[0]["body"]["source"] == source

    body, headers = SENDERS[source](delivery)  # the sender's retry of the same delivery
    again = proc.post(body, headers, source=source)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    time.sleep(0.8)
    assert len(requests.get(f"{platform.url}/sandbox/journal", timeout=5).json()) == 1


@pytest.mark.parametrize("source", ["github", "gitlab", "standard"])
def test_a_wrong_secret_is_401_and_calls_nothing(source: str, receiver: tuple[ReceiverProcess, SandboxServer]) -> None:
    proc, platform = receiver
    requests.post(f"{platform.url}/sandbox/reset", timeout=5).raise_for_status()
    body, headers = SENDERS[source](f"d-{uuid.uuid4()}")
    tampered = body.replace(b"prod-network", b"prod-netwerk") if source == "standard" else body + b" "
    answer = proc.post(tampered, headers, source=source)
    if source == "gitlab":  # a token, not a body signature: a wrong token is what fails
        answer = proc.post(body, {**headers, "X-Gitlab-Token": "wrong"}, source=source)
    assert answer.status_code == 401
    assert answer.json()["error"] == "bad_signature"
    time.sleep(0.3)
    assert requests.get(f"{platform.url}/sandbox/journal", timeout=5).json() == []
