"""Model names for Anthropic clients, and /v1/models in Anthropic's shape.

Claude Code asks for Anthropic model ids (its main model, and a haiku model for background tasks) unless
ANTHROPIC_MODEL / ANTHROPIC_DEFAULT_*_MODEL say otherwise, so every `claude-*` id means the served model, as
do the served name and its configured aliases. Any other name is a 404 not_found_error. (The route is
app/model_routes.py's, shared with OpenAI's clients.)
"""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Request, Response

from app.anthropic import schemas as s
from app.anthropic.errors import error_response
from app.decoding import json_dumps
from app.models import ModelNames
from app.state import ServiceState
from runtime.errors import NotFound

CLAUDE_PREFIX = "claude-"


def accepts(names: ModelNames, requested: str) -> bool:
    return requested in names.accepted or requested.lower().startswith(CLAUDE_PREFIX)


def resolve(names: ModelNames, requested: str, *, param: str = "model") -> str:
    """The served model's name for `requested` (a LoRA adapter's own), or NotFound."""
    if requested in names.adapters:
        return requested
    if accepts(names, requested):
        return names.served
    return names.check(requested, param=param)  # raises NotFound with the served name in its message


def _card(model_id: str, service_state: ServiceState, names: ModelNames) -> s.ModelOut:
    created = datetime.fromtimestamp(service_state.created, tz=UTC).isoformat().replace("+00:00", "Z")
    window = service_state.service.context_length if service_state.service is not None else None
    display = model_id if model_id in names.adapters else names.served  # (an adapter is a model of its own)
    return s.ModelOut(model_id, display, created, max_input_tokens=window, max_tokens=window)


def model_list(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    cards = [_card(name, service_state, names) for name in (names.served, *names.adapters)]
    body = s.ModelListOut(cards, first_id=cards[0].id, last_id=cards[-1].id)
    return Response(json_dumps(body), media_type="application/json")


def model(request: Request, model_id: str, service_state: ServiceState, names: ModelNames) -> Response:
    if not accepts(names, model_id):
        return error_response(request, NotFound(f"model: {model_id}", param="model"))
    return Response(json_dumps(_card(model_id, service_state, names)), media_type="application/json")
