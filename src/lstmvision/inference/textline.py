"""Text-line recognisers (``textline``): a line image -> its text.

Preprocessing is that of training (:func:`lstmvision.data.lines.load_line`: grey, dark ink on
light paper, scaled to the model's height). Each line is decoded alone, greedily or by prefix
beam search (``beam``) with the model's n-gram LM fused in when it has one (``lm.json``; its
tuned weight, or ``lm_weight``).
"""

from __future__ import annotations

from pathlib import Path

from lstmvision.data.images import input_name
from lstmvision.data.lines import Line, load_line
from lstmvision.errors import ConfigError
from lstmvision.inference.base import Predictor, as_image
from lstmvision.inference.results import Transcription
from lstmvision.nn.ctc import decode_lines
from lstmvision.tasks.textline_lm import run_lm


class LinePredictor(Predictor):
    options = ("beam", "lm_weight", "out")

    def _predict(self, items: list, beam=None, lm_weight=None, out=None) -> list[Transcription]:
        beam = 1 if beam is None else int(beam)
        if beam < 1:
            raise ConfigError(f"--beam {beam}: must be at least 1")
        lm = run_lm(self.source.folder, beam, lm_weight)
        results = []
        for i, item in enumerate(items):
            source = as_image(item)
            image = load_line(Line(source, ""), self.model.height)  # (H, W)
            ((text, log_probs),) = decode_lines(self.model, [image], beam, lm)
            result = Transcription(input_name(item, i), text)
            if out is not None:
                from lstmvision.viz.textline import plot_alignment

                stem = source.stem if isinstance(source, Path) else f"input{i}"
                picture = Path(out) / f"{stem}.alignment.png"
                plot_alignment(image, log_probs, self.model.charset, picture, text)
                result.alignment = str(picture)
            results.append(result)
        return results
