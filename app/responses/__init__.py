"""The OpenAI Responses API dialect (POST /v1/responses and the stored-response routes): schemas, conversion
to the neutral ChatRequest, rendering of the neutral events as Response objects and stream events."""
