"""The Anthropic Messages dialect: schemas, conversion to the neutral request, SSE encoding, routes, errors.

Built for Claude Code as much as for the SDKs: see CLAUDE_CODE_INTEGRATION.md for the choices made where
Anthropic's API and a local model differ (mid-conversation system messages, the billing header, usage).
"""
