"""Captioners (``caption``): a photo -> a sentence, and where each word looked.

Preprocessing is that of training (:func:`lstmvision.data.captions.load_photo`: RGB, the whole
photo resized to the encoder's square). Beam search of width ``beam`` (default: the model's
recipe, 3), at most the recipe's ``max_len`` words, its length penalty.
"""

from __future__ import annotations

from pathlib import Path

from lstmvision.errors import ConfigError
from lstmvision.inference.base import Predictor, as_image
from lstmvision.inference.results import Caption
from lstmvision.viz.captions import caption_photo


class CaptionPredictor(Predictor):
    options = ("beam", "out")

    def _predict(self, items: list, beam=None, out=None) -> list[Caption]:
        beam = int(self.config.get("beam", 3)) if beam is None else int(beam)
        if beam < 1:
            raise ConfigError(f"--beam {beam}: the beam width must be at least 1")
        max_len, penalty = int(self.config["max_len"]), float(self.config["length_penalty"])
        results = []
        for i, item in enumerate(items):
            folder = Path(out) if out is not None else None
            r = caption_photo(self.model, as_image(item), beam, max_len, penalty, folder, i)
            words = r["caption"].split()
            results.append(
                Caption(
                    r["image"], r["caption"], words, r.get("attention_weights"), r.get("attention")
                )
            )
        return results
