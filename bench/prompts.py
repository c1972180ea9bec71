"""Random prompts of exact token lengths, counted with the served model's own tokenizer and chat template.

Text is built from whole-word vocabulary entries (" word" tokens that encode back to themselves), so a
prompt's length is predictable; the chat template's own tokens are then measured and the text trimmed or
extended until the rendered prompt is exactly the length asked for.
"""

from __future__ import annotations

import random
import re
from typing import Any

_WORD = re.compile(r" [a-z]{3,12}")
_MAX_ADJUSTMENTS = 20


class PromptBuilder:
    def __init__(self, tokenizer_path: str) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        self.words = self._whole_words()

    def _whole_words(self) -> list[str]:
        texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
        candidates = [(i, t) for i, t in enumerate(texts) if _WORD.fullmatch(t)]
        encoded = self.tokenizer([t for _, t in candidates], add_special_tokens=False)["input_ids"]
        words = [t for (i, t), ids in zip(candidates, encoded) if ids == [i]]
        if len(words) < 50:
            raise ValueError("the tokenizer has too few whole-word tokens to build prompts from")
        return words

    def text(self, tokens: int, rng: random.Random) -> str:
        """About `tokens` tokens of random words."""
        return "".join(rng.choices(self.words, k=max(tokens, 1))).lstrip()

    def chat_tokens(self, messages: list[dict[str, Any]]) -> int:
        """The prompt length as the server counts it: the template's text, encoded without added specials."""
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def user_prompt(self, input_len: int, rng: random.Random, system: str | None = None) -> tuple[str, int]:
        """User text whose rendered chat prompt is `input_len` tokens (or as near as the tokenizer allows),
        and that rendered length."""
        head = [{"role": "system", "content": system}] if system else []

        def measure(picks: list[str]) -> int:
            return self.chat_tokens([*head, {"role": "user", "content": "".join(picks)}])

        room = input_len - measure([])
        if room < 1:
            raise ValueError(f"input length {input_len} is shorter than the chat template's own tokens")
        picks = rng.choices(self.words, k=room)
        actual = measure(picks)
        for _ in range(_MAX_ADJUSTMENTS):
            if actual == input_len:
                break
            if actual < input_len:
                picks += rng.choices(self.words, k=input_len - actual)
            else:
                del picks[max(1, len(picks) - (actual - input_len)) :]
            actual = measure(picks)
        return "".join(picks), actual
