"""Image classifiers (``row-lstm``, ``cnn``): a digit or clothing image -> its class.

Preprocessing is that of the training data (:func:`lstmvision.data.images.load_grey_image`): grey,
bright object on a dark ground, the object's box framed as in the data set, then resized to the
model's ``image_size``. All inputs of one call go through the model as one batch.
"""

from __future__ import annotations

import torch

from lstmvision.data.digits import dataset_info
from lstmvision.data.images import input_name, load_grey_image
from lstmvision.data.transforms import resize_images
from lstmvision.inference.base import Predictor, as_image
from lstmvision.inference.results import Classification


class ImagePredictor(Predictor):
    def _predict(self, items: list, **options) -> list[Classification]:
        info = dataset_info(self.config["dataset"])
        images = torch.stack(
            [load_grey_image(as_image(x), info.size, info.frame) for x in items]
        )  # (N, H, W)
        images = resize_images(images.unsqueeze(1), self.config.get("image_size"))  # (N, 1, S, S)
        probs = self.model(images).softmax(-1)  # (N, classes)
        results = []
        for i, (item, p) in enumerate(zip(items, probs)):
            top = int(p.argmax())
            results.append(
                Classification(
                    input_name(item, i),
                    label=info.classes[top],
                    index=top,
                    confidence=float(p[top]),
                    probabilities={c: float(q) for c, q in zip(info.classes, p)},
                )
            )
        return results
