"""Helpers for the Claude Code tests: a request shaped like the CLI's, a model that ends its turns, the CLI."""
