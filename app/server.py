"""create_app(settings): the Litestar application, its routers, dependencies and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Response, get, head
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import MethodNotAllowedException, NotFoundException
from litestar.logging import LoggingConfig
from litestar.types import Message, Scope

from app.anthropic.routes import anthropic_router
from app.auth import api_key_guard, require_key
from app.dialect import error_in_callers_dialect
from app.media_type import require_json_body
from app.metrics import Metrics
from app.lora_routes import lora_router
from app.model_routes import models_router
from app.models import ModelNames
from app.openai.routes import openai_router
from app.openai.tokens import tokens_router
from app.openapi import openapi_router
from app.request_id import LOG_FORMAT, RequestIdMiddleware, add_headers, install_log_ids
from app.responses.routes import responses_router
from app.settings import Settings
from app.sglang_native.routes import sglang_native_router
from app.store import ConversationStore, StoreLimits, open_store
from app.state import ServiceState
from runtime.errors import Unauthorized


@get("/health", include_in_schema=False)
async def health(service_state: ServiceState) -> Response:
    if service_state.ready:
        return Response({"status": "ok"}, status_code=200)
    body = {"status": "failed", "error": service_state.failure} if service_state.failure else {"status": "loading"}
    return Response(body, status_code=503)


@head("/health", include_in_schema=False)
async def health_head(service_state: ServiceState) -> Response[None]:
    """What load balancers' HEAD probes ask: the status alone."""
    return Response(b"", status_code=200 if service_state.ready else 503)


@get("/metrics", include_in_schema=False)
async def metrics(service_state: ServiceState) -> Response:
    body, media_type = service_state.metrics.exposition()
    return Response(body, media_type=media_type)


@get("/version", include_in_schema=False)
async def version() -> Response:
    """vLLM's and SGLang's /version: this server's package version."""
    return Response({"version": _package_version()}, status_code=200)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("inference-service")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0+unknown"


OPEN_PATHS = ("/health", "/metrics", "/version")  # answered without a key (as vLLM answers them)


def error_handler(keys: tuple[str, ...]):
    """Errors outside any router's handlers (unknown routes, methods): in the dialect the client speaks, and
    behind the key like the routes themselves, so that a 404 or 405 tells only key holders what exists."""

    def handle(request: Request, exc: Exception) -> Response:
        if isinstance(exc, (NotFoundException, MethodNotAllowedException)) and request.url.path not in OPEN_PATHS:
            try:
                require_key(request, keys)
            except Unauthorized as unauthorized:
                return error_in_callers_dialect(request, unauthorized)
        return error_in_callers_dialect(request, exc)

    return handle


def on_response_start(metrics: Metrics):
    """The one before-send hook, not one per concern: Litestar awaits each hook on every send, each streamed
    chunk included, and only a response's start concerns them (its id headers, its count)."""

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start":
            add_headers(message, scope)
            metrics.count_response(message, scope)

    return hook


def create_app(settings: Settings) -> Litestar:
    install_log_ids()
    state = ServiceState(settings)
    names = ModelNames(settings)
    conversations: list[ConversationStore] = []  # opened by the lifespan (a file or a connection pool)

    def conversation_store() -> ConversationStore:
        return conversations[0]

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        import asyncio

        limits = StoreLimits(settings.responses_store_max_age, settings.responses_store_max_bytes)
        conversations.append(await asyncio.to_thread(open_store, settings.store_location, limits))
        loading = asyncio.create_task(state.start())
        try:
            yield
        finally:
            loading.cancel()
            await state.stop()
            await conversations.pop().close()

    routers = [openai_router(), anthropic_router(), responses_router(), models_router(), tokens_router(),
               sglang_native_router(), lora_router(), openapi_router()]
    for router in routers:
        router.guards = [*(router.guards or []), api_key_guard(settings.api_keys)]
    return Litestar(
        route_handlers=[health, health_head, metrics, version, *routers],
        dependencies={"service_state": Provide(lambda: state, sync_to_thread=False),
                      "names": Provide(lambda: names, sync_to_thread=False),
                      "conversations": Provide(conversation_store, sync_to_thread=False)},
        exception_handlers={Exception: error_handler(settings.api_keys)},
        before_request=require_json_body,
        lifespan=[lifespan],
        request_max_body_size=settings.max_request_bytes,
        middleware=[RequestIdMiddleware],
        # (Litestar's root handler; its root level would be INFO whatever --log-level says)
        logging_config=LoggingConfig(formatters={"standard": {"format": LOG_FORMAT}},
                                     root={"handlers": ["queue_listener"], "level": settings.log_level.upper()}),
        before_send=[on_response_start(state.metrics)],
        openapi_config=None,  # app/openapi.py serves the document, from the structs the handlers decode with
        state=State({_SERVICE_STATE: state}),
    )


_SERVICE_STATE = "service_state"


def service_state(app: Litestar) -> ServiceState:
    """The app's ServiceState (for app/__main__.py, which tells it of a shutdown signal)."""
    return app.state[_SERVICE_STATE]
