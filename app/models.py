"""Which model names the service answers to: the served model, its aliases, and each LoRA adapter."""

from __future__ import annotations

import asyncio

from app.settings import Settings
from runtime.adapters import LoraAdapter
from runtime.errors import NotFound


class ModelNames:
    def __init__(self, settings: Settings) -> None:
        self.served = settings.model_name
        self.aliases = frozenset(settings.model_aliases)
        self.adapters: dict[str, LoraAdapter] = {a.name: a for a in settings.lora_adapters}
        self.updating = asyncio.Lock()  # held while an adapter is loaded or unloaded (app/lora_routes.py)

    @property
    def accepted(self) -> frozenset[str]:
        return frozenset((self.served, *self.aliases, *self.adapters))

    def add_adapter(self, adapter: LoraAdapter) -> None:
        """An adapter loaded while serving (app/lora_routes.py) becomes a model id."""
        self.adapters[adapter.name] = adapter

    def remove_adapter(self, name: str) -> None:
        self.adapters.pop(name, None)

    def is_base_name(self, name: str) -> bool:
        """The served model's name or an alias: no adapter may take it."""
        return name == self.served or name in self.aliases

    def check(self, name: str, *, param: str = "model") -> str:
        """The name responses carry: the one the client asked for, as OpenAI and vLLM echo it."""
        if name not in self.accepted:
            raise NotFound(f"The model {name!r} does not exist. This server serves {self._listing()}.", param=param)
        return name

    def adapter(self, name: str) -> str | None:
        """The LoRA adapter a checked model name selects (vLLM's and SGLang's: an adapter is a model id), or
        None for the base model."""
        return name if name in self.adapters else None

    def lora(self, name: str, *, param: str) -> str:
        """An adapter named as such (SGLang's `lora_path`), or NotFound."""
        if name not in self.adapters:
            known = ", ".join(repr(n) for n in self.adapters) or "none"
            raise NotFound(f"The LoRA adapter {name!r} is not loaded. Loaded adapters: {known}.", param=param)
        return name

    def _listing(self) -> str:
        return ", ".join(repr(n) for n in (self.served, *self.adapters))
