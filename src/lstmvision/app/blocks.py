"""The app's page: one tab per system, each opening with a line on its model and ending with its
model card; every event goes through :func:`handler` (a user's error becomes a message in the
page, every request's server-side time goes to the log). Imports Gradio: only
:mod:`lstmvision.app.server` imports this module, after turning Gradio's analytics off.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from pathlib import Path

import gradio as gr

from lstmvision.app import captions, char_lm, digits, inside, lines, video
from lstmvision.app.served import Served
from lstmvision.errors import LstmvisionError

log = logging.getLogger("lstmvision.app")

INTRO = (
    "# lstmvision\n"
    "Recurrent networks on your own images, and what happens inside them. Everything runs on "
    "this machine: uploads stay here and are deleted when the app stops."
)


def message(error: Exception, folder: Path) -> str:
    """The error's one line, with the app's upload folders cut from file paths (a file is named
    as the user named it)."""
    return re.sub(rf"{re.escape(str(folder))}/(?:[^/\s]+/)*", "", str(error))


def handler(folder: Path, name: str, fn, stream: bool = False):
    """``fn`` for a Gradio event: a :class:`LstmvisionError` (bad input) becomes a message in the
    page (``gr.Error``), anything else is logged with its traceback and shown as one line; the
    server-side time of each request is logged (``name: N ms``). ``stream``: ``fn`` yields."""

    def failed(e: Exception) -> gr.Error:
        if isinstance(e, LstmvisionError):
            log.info("%s: refused: %s", name, message(e, folder))
            return gr.Error(
                message(e, folder), duration=20, title="Cannot read this input",
                print_exception=False,
            )  # fmt: skip
        log.exception("%s failed", name)
        return gr.Error(f"the model failed on this input ({type(e).__name__}: {e})")

    def done(start: float, ok: bool) -> None:
        ms = 1000 * (time.perf_counter() - start)
        log.info("%s: %.1f ms%s", name, ms, "" if ok else " (error)")

    if stream:

        @functools.wraps(fn)
        def streamed(*args):
            start, ok = time.perf_counter(), False
            try:
                yield from fn(*args)
                ok = True
            except gr.Error:
                raise
            except Exception as e:
                raise failed(e) from None
            finally:
                done(start, ok)

        return streamed

    @functools.wraps(fn)
    def called(*args):
        start, ok = time.perf_counter(), False
        try:
            result = fn(*args)
            ok = True
            return result
        except Exception as e:
            raise failed(e) from None
        finally:
            done(start, ok)

    return called


def _card(served: Served) -> None:
    text = served.card_markdown()
    if text:
        with gr.Accordion("Model card", open=False):
            gr.Markdown(text)


def build_app(served: dict[str, Served], folder: Path, data_root: str) -> gr.Blocks:
    """The page of the models ``served`` (``{tab: Served}``, :func:`lstmvision.app.served.
    load_served`); uploads and pictures live under ``folder``; seeded sequences read MNIST from
    ``data_root``."""
    wrap = functools.partial(handler, folder)
    with gr.Blocks(title="lstmvision", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            if "digits" in served:
                with gr.Tab("Digits", id="digits"):
                    gr.Markdown(served["digits"].summary())
                    digits.build(served["digits"], wrap)
                    _card(served["digits"])
            if "captions" in served:
                with gr.Tab("Captions", id="captions"):
                    gr.Markdown(served["captions"].summary())
                    captions.build(served["captions"], wrap)
                    _card(served["captions"])
            if "lines" in served:
                with gr.Tab("Text lines", id="lines"):
                    gr.Markdown(served["lines"].summary())
                    lines.build(served["lines"], wrap, folder)
                    _card(served["lines"])
            with gr.Tab("Video", id="video"):
                clip, forecaster = served.get("clip"), served.get("forecast")
                video.build(clip, forecaster, wrap, folder, data_root)
                for model in (clip, forecaster):
                    if model is not None:
                        _card(model)
            if "char-lm" in served:
                with gr.Tab("Character LM", id="char-lm"):
                    gr.Markdown(served["char-lm"].summary())
                    char_lm.build(served["char-lm"], wrap)
                    _card(served["char-lm"])
            with gr.Tab("Inside", id="inside"):
                inside.build(wrap, folder)
    demo.queue(default_concurrency_limit=1)  # one request per event at a time; tabs in parallel
    return demo
