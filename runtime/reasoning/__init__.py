"""Reasoning models: their thinking kept apart from the answer.

One format per model family (formats.py, a registry detected from the chat template), an incremental splitter
of the engine's text into reasoning and answer (splitter.py), the thinking budget both engines enforce in token
ids (budget.py), the grammar's free reasoning region (grammar.py), and the per-request plan that ties a
request's controls to the template, the engine and the splitter (plan.py)."""
