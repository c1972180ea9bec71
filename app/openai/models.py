"""/v1/models in OpenAI's shape (the route is app/model_routes.py's, shared with Anthropic's clients)."""

from __future__ import annotations

from litestar import Request, Response

from app.decoding import json_dumps
from app.models import ModelNames
from app.openai import schemas as s
from app.state import ServiceState
from runtime.errors import NotFound


def _card(model_id: str, service_state: ServiceState, names: ModelNames) -> s.ModelCard:
    """A LoRA adapter's card as vLLM shows it: `root` its path, `parent` the base model."""
    window = service_state.service.context_length if service_state.service else None
    adapter = names.adapters.get(model_id)
    if adapter is not None:
        return s.ModelCard(model_id, service_state.created, "inference-service", root=adapter.path,
                           parent=names.served, max_model_len=window)
    return s.ModelCard(model_id, service_state.created, "inference-service", root=names.served, max_model_len=window)


def model_list(_: Request, service_state: ServiceState, names: ModelNames) -> Response:
    cards = [_card(name, service_state, names) for name in (names.served, *names.adapters)]
    return Response(json_dumps(s.ModelList(cards)), media_type="application/json")


def model(_: Request, model_id: str, service_state: ServiceState, names: ModelNames) -> Response:
    if model_id not in names.accepted:
        raise NotFound(f"The model {model_id!r} does not exist.", param="model")
    return Response(json_dumps(_card(model_id, service_state, names)), media_type="application/json")
