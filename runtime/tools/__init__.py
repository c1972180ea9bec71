"""Tool calling: per-family formats (how calls look in text, the grammar that enforces them, the parser),
schema checks, and the plan that ties a request's tools and tool_choice to one constraint."""
