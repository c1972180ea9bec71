from litestar import Router


def responses_router() -> Router:
    return Router(path="/v1", route_handlers=[])
