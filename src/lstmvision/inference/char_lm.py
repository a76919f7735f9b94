"""Character language models (``char-lm``): a prompt -> the text sampled after it."""

from __future__ import annotations

import math

import torch

from lstmvision.data.text import CharVocab
from lstmvision.errors import ConfigError
from lstmvision.inference.base import Predictor
from lstmvision.inference.results import Generated
from lstmvision.models.text import sample


class CharLMPredictor(Predictor):
    """``predict(prompt)`` (or a list of prompts; default ``"\\n"``): ``length`` characters
    (300) sampled at ``temperature`` (the recipe's; 0: greedy) with random ``seed``."""

    options = ("length", "temperature", "seed")

    def predict(self, inputs="\n", **options):
        return super().predict(inputs, **options)

    def _predict(self, items: list, length=None, temperature=None, seed=None) -> list[Generated]:
        length = 300 if length is None else int(length)
        temperature = float(self.config["temperature"]) if temperature is None else temperature
        seed = int(self.config.get("seed", 0)) if seed is None else int(seed)
        if length < 0 or temperature < 0:
            raise ConfigError(
                f"--length {length} / --temperature {temperature}: neither may be negative"
            )
        if not math.isfinite(temperature):
            raise ConfigError(f"--temperature {temperature}: must be a finite number")
        vocab = CharVocab(self.model.chars)
        results = []
        for prompt in items:
            if not isinstance(prompt, str) or not prompt:
                raise ConfigError(f"--prompt {prompt!r}: give at least one character")
            ids = vocab.encode(prompt, what=f"--prompt {prompt!r}")
            g = torch.Generator().manual_seed(seed)
            out = sample(self.model, ids, length, temperature, generator=g)
            results.append(Generated(prompt, prompt + vocab.decode(out), temperature, seed))
        return results
