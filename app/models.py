"""Which model names the service answers to."""

from __future__ import annotations

from app.settings import Settings
from runtime.errors import NotFound


class ModelNames:
    def __init__(self, settings: Settings) -> None:
        self.served = settings.model_name
        self.accepted = frozenset((self.served, *settings.model_aliases))

    def check(self, name: str, *, param: str = "model") -> str:
        """The name responses carry: the one the client asked for, as OpenAI and vLLM echo it."""
        if name not in self.accepted:
            raise NotFound(f"The model {name!r} does not exist. This server serves {self.served!r}.", param=param)
        return name
