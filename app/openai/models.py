"""/v1/models in OpenAI's shape (the route is app/model_routes.py's, shared with Anthropic's clients)."""

from __future__ import annotations

from litestar import Request, Response

from app.decoding import json_dumps
from app.models import ModelNames
from app.openai import schemas as s
from app.state import ServiceState
from runtime.errors import NotFound


def _card(model_id: str, service_state: ServiceState, names: ModelNames) -> s.ModelCard:
    window = service_state.service.context_length if service_state.service else None
    return s.ModelCard(model_id, service_state.created, "inference-service", root=names.served, max_model_len=window)


def model_list(_: Request, service_state: ServiceState, names: ModelNames) -> Response:
    return Response(json_dumps(s.ModelList([_card(names.served, service_state, names)])),
                    media_type="application/json")


def model(_: Request, model_id: str, service_state: ServiceState, names: ModelNames) -> Response:
    if model_id not in names.accepted:
        raise NotFound(f"The model {model_id!r} does not exist.", param="model")
    return Response(json_dumps(_card(model_id, service_state, names)), media_type="application/json")
