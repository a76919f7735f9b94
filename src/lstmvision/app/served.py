"""The models an app serves, loaded once at start: one per tab, chosen by the model's task.

With no model named the app serves every shipped model (``lstmvision models --pretrained``);
named models (shipped names, saved model folders, training run folders) serve their tabs, and
``shipped=True`` fills the other tabs with the shipped models.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from lstmvision.errors import ConfigError
from lstmvision.inference.base import Predictor, load
from lstmvision.inference.card import headline
from lstmvision.pretrained import PRETRAINED, catalog, names
from lstmvision.tasks.model_folder import CARD

# task -> the tab that serves its models
TABS = {
    "row-lstm": "digits",
    "cnn": "digits",
    "caption": "captions",
    "textline": "lines",
    "clip-classify": "clip",
    "next-frame": "forecast",
    "char-lm": "char-lm",
}


@dataclass
class Served:
    """A loaded model and what its tab says about it."""

    name: str  # as given: a shipped name or a folder
    tab: str
    predictor: Predictor
    load_seconds: float

    @property
    def notes(self) -> dict:
        """Its catalog entry when it is a shipped model, else {}."""
        folder = self.predictor.source.folder
        shipped = folder is not None and Path(folder).resolve().parent == PRETRAINED.resolve()
        return catalog().get(Path(folder).name, {}) if shipped else {}

    @property
    def card_path(self) -> Path | None:
        folder = self.predictor.source.folder
        path = Path(folder).resolve() / CARD if folder is not None else None
        return path if path is not None and path.is_file() else None

    def trained_on(self) -> str:
        """One line: the training data (the catalog's first sentence, the card's section, or
        the run's data set)."""
        data = self.notes.get("data") or _card_section(self.predictor.card, "Training data")
        if data:
            return data.split(". ")[0].rstrip(".")
        return f"data set `{self.predictor.config.get('dataset', '?')}`"

    def summary(self) -> str:
        """One markdown line: the model, what it was trained on, its headline figure, a link
        to its model card."""
        src = self.predictor.source
        kinds = dict.fromkeys([src.task, src.model_name or src.task])  # once when the same
        what = f"**{Path(self.name).name}** ({', '.join(f'`{k}`' for k in kinds)})"
        figure = headline(self.predictor.metrics, self.notes) if self.notes else _first_test(src)
        card = (
            f"[model card](/gradio_api/file={quote(str(self.card_path))})"
            if self.card_path
            else f"no model card (a run folder: `{src.folder}`)"
        )
        return f"{what}: trained on {self.trained_on()}; {figure}; {card}."

    def card_markdown(self) -> str:
        """The model card without its YAML front matter."""
        return re.sub(r"\A---\n.*?\n---\n", "", self.predictor.card, flags=re.S).strip()


def _card_section(card: str, title: str) -> str:
    match = re.search(rf"^## {title}\n+(.+?)\n", card, flags=re.M)
    return match.group(1).strip() if match else ""


HEADLINES = ("test_accuracy", "test_cer", "test_mse", "test_bleu4", "test_loss")


def _first_test(src) -> str:
    """A run's headline: the first of :data:`HEADLINES` it has, else its first test figure."""
    tests = sorted(k for k in src.metrics if k.startswith("test_"))
    if not tests:
        return "no test figure recorded"
    key = next((k for k in HEADLINES if k in src.metrics), tests[0])
    value = src.metrics[key]
    return f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"


def load_served(sources: list[str] | None = None, shipped: bool = False) -> dict[str, Served]:
    """``{tab: Served}`` of the models ``sources`` names (all shipped models when none; with
    ``shipped`` the shipped models also serve the tabs no named model takes). Two named models
    for one tab, or a model of a task without a tab, is a :class:`ConfigError`."""
    served: dict[str, Served] = {}
    if not sources:  # the first shipped model of each tab, in the catalog's order
        return _shipped_per_tab(served)
    for source in sources:
        item = _load(str(source))
        if item.tab in served:
            raise ConfigError(
                f"{served[item.tab].name} and {source}: both are {item.tab} models; name one "
                "model per tab"
            )
        served[item.tab] = item
    return _shipped_per_tab(served) if shipped else served


def _shipped_per_tab(served: dict[str, Served]) -> dict[str, Served]:
    """``served`` with the tabs it leaves empty given the first shipped model of their task in
    the catalog's order (e.g. textline-handwriting before textline-print for the Lines tab)."""
    shipped = set(names())
    for name, notes in catalog().items():
        tab = TABS.get(notes.get("task", ""))
        if name in shipped and tab is not None and tab not in served:
            served[tab] = _load(name)
    return served


def _load(source: str) -> Served:
    start = time.perf_counter()
    predictor = load(source)
    tab = TABS.get(predictor.task)
    if tab is None:
        raise ConfigError(
            f"{source}: a {predictor.task!r} model has no tab in the app (it serves models of "
            f"{', '.join(sorted(TABS))})"
        )
    return Served(source, tab, predictor, time.perf_counter() - start)
