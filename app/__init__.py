"""The HTTP service: Litestar app, one package per API dialect."""
