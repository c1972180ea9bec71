"""GET /v1/models and /v1/models/{id}, for both dialects: one route, answered in the caller's shape (the
dialect is app/dialect.py's decision), with its errors in the caller's shape too."""

from __future__ import annotations

from litestar import Request, Response, Router, get

from app.anthropic import models as anthropic_models
from app.dialect import Dialect, dialect_of, error_in_callers_dialect
from app.models import ModelNames
from app.openai import models as openai_models
from app.state import ServiceState

_BY_DIALECT = {Dialect.OPENAI: openai_models, Dialect.ANTHROPIC: anthropic_models}


@get("/models")
async def list_models(request: Request, service_state: ServiceState, names: ModelNames) -> Response:
    return _BY_DIALECT[dialect_of(request)].model_list(request, service_state, names)


@get("/models/{model_id:path}")
async def get_model(request: Request, model_id: str, service_state: ServiceState, names: ModelNames) -> Response:
    return _BY_DIALECT[dialect_of(request)].model(request, model_id.lstrip("/"), service_state, names)


def models_router() -> Router:
    return Router(path="/v1", route_handlers=[list_models, get_model],
                  exception_handlers={Exception: error_in_callers_dialect})
