"""Schemathesis against GET /openapi.json on a real server (every route of both dialects, valid and invalid
requests), then malformed bodies of our own (tests/fuzzing.py): not one answer may be a 5xx, and none may
take past its timeout.

Bounded for the suite (a few examples per route and mode, a small context window so generations end
quickly); FUZZ_EXAMPLES and FUZZ_MALFORMED run more.
"""

from __future__ import annotations

import os

from tests.conftest import MODEL_NAME
from tests.fuzzing import Tally, fuzz_malformed, fuzz_schema
from tests.live_server import start_server

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
MALFORMED = int(os.environ.get("FUZZ_MALFORMED", "150"))


def test_no_server_errors(served_model_args, server_logs):
    server = start_server(*served_model_args, "--served-model-name", MODEL_NAME, "--context-length", "96",
                          "--max-running-requests", "4", "--max-queue-wait", "20", log_dir=server_logs)
    try:
        tally = Tally()
        fuzz_schema(server.base_url, EXAMPLES, tally, MODEL_NAME)
        fuzz_malformed(server.base_url, MALFORMED, tally, MODEL_NAME)
    finally:
        server.stop()
    print(dict(sorted(tally.by_status.items())))
    assert not tally.server_errors, "\n----\n".join(tally.server_errors[:5])
    assert sum(tally.by_status.values()) >= MALFORMED
