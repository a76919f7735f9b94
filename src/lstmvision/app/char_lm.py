"""Character LM tab (``char-lm``): a prompt, a temperature and a length -> the sample, streamed
into the page as it is drawn.

:func:`stream` shows :func:`lstmvision.models.text.sample_ids` as they are drawn (the loop
``predict`` runs, so the finished text is the one ``predict`` gives).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lstmvision.data.text import CharVocab
from lstmvision.errors import DataError
from lstmvision.inference.base import Predictor
from lstmvision.models.text import sample_ids

MAX_LENGTH = 2000
EVERY = 8  # characters per update sent to the page


def _settings(temperature, length, seed) -> tuple[float, int, int]:
    try:
        temperature, length, seed = float(temperature), int(length), int(seed)
    except (TypeError, ValueError):
        raise DataError("temperature, length and seed must be numbers") from None
    if not 0 <= temperature <= 10:
        raise DataError(f"temperature {temperature:g}: must be between 0 (greedy) and 10")
    if not 1 <= length <= MAX_LENGTH:
        raise DataError(f"length {length}: must be between 1 and {MAX_LENGTH}")
    if not 0 <= seed < 2**63:
        raise DataError(f"seed {seed}: must be 0 or more")
    return temperature, length, seed


@torch.inference_mode()
def stream(
    predictor: Predictor, prompt: str, temperature=0.8, length=300, seed=0, every: int = EVERY
) -> Iterator[str]:
    """The prompt and the text sampled after it so far, every ``every`` characters and at the
    end: ``sample``'s loop (read the prompt, then draw from ``softmax(logits / temperature)``,
    greedy at 0, and feed the draw back) with ``torch.Generator().manual_seed(seed)``."""
    temperature, length, seed = _settings(temperature, length, seed)
    if not prompt:
        raise DataError("the prompt is empty: give at least one character")
    vocab = CharVocab(predictor.model.chars)
    ids = vocab.encode(prompt, what=f"prompt {prompt!r}")
    generator = torch.Generator().manual_seed(seed)
    text = prompt
    for n, i in enumerate(sample_ids(predictor.model, ids, length, temperature, generator), 1):
        text += vocab.decode([i])
        if n % every == 0 or n == length:
            yield text


def build(served, handler) -> None:
    import gradio as gr

    predictor = served.predictor
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(value="ROMEO:", label="prompt", lines=2)
            temperature = gr.Slider(
                0, 2, value=float(predictor.config.get("temperature", 0.8)), step=0.05,
                label="temperature (0: always the likeliest character)",
            )  # fmt: skip
            length = gr.Slider(1, MAX_LENGTH, value=300, step=1, label="characters to sample")
            seed = gr.Number(value=0, precision=0, label="seed")
            run = gr.Button("Sample", variant="primary")
        text = gr.Textbox(label="sample (streams as it is drawn)", lines=18, elem_id="lm-text")
    run.click(
        handler("char_lm", lambda p, t, n, s: stream(predictor, p, t, n, s), stream=True),
        [prompt, temperature, length, seed],
        text,
        api_name="char_lm",
    )
