"""Start the app: load the models once, build the page, serve it with Gradio's queue.

Local by default: it listens on 127.0.0.1, opens a public share link only with ``share=True``,
sends no analytics (``GRADIO_ANALYTICS_ENABLED=False`` is set before Gradio is imported), loads
no web fonts, and keeps uploads in a private temporary folder removed at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from lstmvision.errors import ConfigError

log = logging.getLogger("lstmvision.app")

MAX_UPLOAD_MB = 20


def serve(
    models: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    max_upload_mb: int = MAX_UPLOAD_MB,
    shipped: bool = False,
    data_root: str | None = None,
    threads: int | None = None,
) -> None:
    """Serve the models ``models`` names (every shipped model when none; ``shipped``: the shipped
    models also fill the tabs none of them takes) until interrupted."""
    if max_upload_mb < 1:
        raise ConfigError(f"--max-upload-mb {max_upload_mb}: must be at least 1")
    import torch

    from lstmvision.app.served import load_served
    from lstmvision.data import resolve_data_root

    if threads:
        torch.set_num_threads(threads)
    served = load_served(models, shipped)  # a bad name fails here, before anything is set up
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own requests to itself
    for tab, item in served.items():
        log.info("%s tab: %s (loaded in %.2f s)", tab, item.name, item.load_seconds)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    folder = Path(tempfile.mkdtemp(prefix="lstmvision-app-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "uploads")
    from lstmvision.app.blocks import build_app  # imports gradio

    demo = build_app(served, folder, str(resolve_data_root(data_root)))
    log.info("torch threads: %d; uploads up to %d MB", torch.get_num_threads(), max_upload_mb)
    log.info("uploads and results in %s (removed when the app stops)", folder)
    theme = _theme()
    signal.signal(signal.SIGTERM, _interrupt)  # stop as on Ctrl-C: Gradio closes, folder removed
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=share,
            max_file_size=f"{max_upload_mb}mb",
            allowed_paths=[str(s.card_path) for s in served.values() if s.card_path],
            inbrowser=False,
            ssr_mode=False,
            show_error=True,
            theme=theme,
        )
    except OSError as e:
        raise ConfigError(f"cannot serve on {host}:{port} ({e})") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _theme():
    """Gradio's default look with the system's fonts (its own loads them from Google Fonts)."""
    import gradio as gr

    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "Consolas", "monospace"],
    )
