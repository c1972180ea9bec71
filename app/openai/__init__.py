"""The OpenAI dialect: schemas, conversion to the neutral request, SSE encoding, routes, errors."""
