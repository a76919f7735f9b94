"""Model cards: the README.md of a saved model folder, in the Hugging Face card layout (YAML
front matter, then the text), written from its config, figures and provenance; a shipped model's
hand-written parts (data licence, what it is not good at) come from ``pretrained/catalog.json``.
"""

from __future__ import annotations

import yaml
from torch import nn

PERCENT = ("accuracy", "cer", "wer")  # metric names shown as percentages


def _shown(key: str, value) -> str:
    if isinstance(value, float) and any(p in key for p in PERCENT) and abs(value) <= 1:
        return f"{100 * value:.2f} %"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _cli(name: str, task: str, example: str) -> str:
    if task == "char-lm":
        return f'lstmvision predict {name} --prompt "{example}"'
    verb = "transcribe" if task == "textline" else "predict"
    return f"lstmvision {verb} {name} {example}"


def headline(metrics: dict, notes: dict) -> str:
    """``metric value (what it is)`` of a model's headline figure, from its catalog entry."""
    key, what = (notes.get("headline") or [None, None])[:2]
    if key is None or key not in metrics:
        return "no headline figure recorded"
    return f"{key} {_shown(key, metrics[key])} ({what})"


def model_card(name: str, source, model: nn.Module, notes: dict | None = None) -> str:
    """The card of the model ``name`` (``source``: its :class:`~lstmvision.inference.base.Source`;
    ``notes``: its catalog entry, if any)."""
    notes = notes or {}
    prov, metrics = source.provenance or {}, source.metrics or {}
    params = sum(p.numel() for p in model.parameters())
    front = {
        "library_name": "lstmvision",
        "license": notes.get("license", "other"),
        "tags": ["lstmvision", source.task, "pytorch", "safetensors"],
        "pipeline_tag": {
            "row-lstm": "image-classification",
            "cnn": "image-classification",
            "textline": "image-to-text",
            "caption": "image-to-text",
            "char-lm": "text-generation",
        }.get(source.task, "other"),
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {name}", ""]
    lines += [notes.get("summary", f"A trained `{source.task}` model of lstmvision."), ""]
    lines += [
        "## Model",
        "",
        f"- task: `{source.task}`; architecture: `{source.model_name}` ({params:,} parameters)",
        f"- weights: `model.safetensors` ({prov.get('weights_dtype', 'float32')}); "
        "configuration: `config.json`",
        "",
        "## Use",
        "",
        "```python",
        "import lstmvision",
        "",
        f'model = lstmvision.load("{name}")',
        f'result = model.predict("{notes.get("example", "input.png")}")',
        "```",
        "",
        f"Command line: `{_cli(name, source.task, notes.get('example', 'INPUT'))}`; "
        f"`lstmvision evaluate {name}` measures the figures below again.",
        "",
        "## Training data",
        "",
        notes.get("data", f"data set `{source.config.get('dataset')}`."),
        "",
        f"Licence: {notes.get('data_license', 'see the data set.')}",
        "",
        "## Training",
        "",
        f"- command: `{prov.get('command', notes.get('command', '?'))}` (its recipe; "
        "`config.json` holds every resolved setting)",
    ]
    for key, label in (
        ("date", "trained"),
        ("machine", "machine"),
        ("train_seconds", "training time (s)"),
        ("lstmvision_commit", "lstmvision commit"),
    ):
        if prov.get(key) is not None:
            lines.append(f"- {label}: {prov[key]}")
    lines += ["", "## Results", ""]
    if metrics:
        measured = prov.get("measured", "the saved weights loaded back")
        lines += [f"Measured on {measured}.", "", "| metric | value |", "|---|---|"]
        lines += [f"| `{k}` | {_shown(k, v)} |" for k, v in sorted(metrics.items())]
        if notes.get("headline"):
            lines += ["", f"Headline: {headline(metrics, notes)}."]
    else:
        lines.append("No figures recorded.")
    lines += ["", "## Limitations", "", notes.get("limitations", "Not described."), ""]
    return "\n".join(lines)
