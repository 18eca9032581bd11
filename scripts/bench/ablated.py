"""pipedial under `receiver serve`'s gunicorn settings, with parts of its intake switched off (bench only).

Run by scripts/bench/ablation.py with BENCH_ABLATE=storage or storage,answer, to size what the parts
cost against the 60% target: never a way to run pipedial, since without storage it would answer 202
for webhooks it does not keep.
- storage: `enqueue` stores nothing and reports one new pending job per route (no SQLite at all);
- answer: the "webhook accepted" audit line, its metrics and the JSON body are replaced by a bare 202.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from flask import Flask, Response

from receiver import views
from receiver.config import Settings
from receiver.model import Enqueued, Event, StoredJob, Target
from receiver.server import _Application

ABLATIONS = ("storage", "answer")


def ablate(app: Flask, parts: Sequence[str]) -> None:
    """Switch the named parts of the app's intake off (in this process)."""
    unknown = set(parts) - set(ABLATIONS)
    if unknown:
        raise SystemExit(f"BENCH_ABLATE: unknown part(s) {sorted(unknown)}; known: {', '.join(ABLATIONS)}")
    rt = app.extensions["pipedial"]
    if "storage" in parts:
        def enqueue(event: Event, targets: Sequence[Target], *, event_id: str, **_: Any) -> Enqueued:
            jobs = [StoredJob(id=0, route=t.route, state="pending", duplicate=False) for t in targets]
            return Enqueued(event_id=event_id, duplicate=False, jobs=jobs)

        rt.outbox.enqueue = enqueue
    if "answer" in parts:
        views._accepted = lambda *_: (Response(status=202), 202)  # type: ignore[assignment]


class _Ablated(_Application):
    def load(self) -> Any:
        app = super().load()
        ablate(app, [p for p in os.environ.get("BENCH_ABLATE", "").split(",") if p])
        return app


if __name__ == "__main__":
    _Ablated(Settings.from_env()).run()
