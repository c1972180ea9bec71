"""Engine-neutral runtime: request/event types, engines, chat templating and tool-call formats."""
