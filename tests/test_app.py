"""``lstmvision app``: the Gradio app started in a subprocess on a free localhost port with the
shipped models, driven through every tab's endpoint with gradio_client
on real files of ../shared/data, its bad-input paths, and a real browser (Debian's Chromium
through Selenium) uploading a digit and a non-image.

The server starts once for the module. ``LSTMVISION_SCREENSHOT=1`` makes the browser test also
write docs/app-screenshot.png (README's picture of the app).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import lstmvision
from lstmvision.pretrained import PRETRAINED

pytestmark = pytest.mark.slow
DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
UPLOAD_MB = 2


def _needs(module: str):
    """Import ``module``: CI installs the dev extra (gradio, gradio_client, selenium), so a
    missing one fails there and skips elsewhere."""
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed in CI (pip install -e '.[dev]')")
        pytest.skip(f"{module} not installed (pip install -e '.[dev]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, data_root):
    """``(url, log file)`` of one app serving every shipped model (no model named), on
    127.0.0.1, uploads capped at 2 MB, one torch thread."""
    _needs("gradio")
    folder = tmp_path_factory.mktemp("app")
    port, log = _free_port(), folder / "server.log"
    command = [sys.executable, "-m", "lstmvision.cli", "app"]
    command += ["--port", str(port), "--threads", "1", "--max-upload-mb", str(UPLOAD_MB)]
    command += ["--data-root", str(data_root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, proc, log)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    uploads = re.search(r"uploads and results in (\S+) ", log.read_text())
    assert uploads and not Path(uploads.group(1)).exists(), "the upload folder outlived the app"


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the app exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the app did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


@pytest.fixture(scope="module")
def digits(tmp_path_factory, data_root) -> list[tuple[Path, str]]:
    """Three MNIST test digits as PNG files, each with its label (the end of its name)."""
    from lstmvision.data.samples import export_samples

    folder = tmp_path_factory.mktemp("digits")
    paths = export_samples("mnist", folder, 3, "test", data_root)
    return [(p, p.stem.rsplit("-", 1)[1]) for p in paths]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    files = {
        "not an image": folder / "notes.png",
        "empty": folder / "empty.png",
        "huge": folder / "huge.png",
        "wide": folder / "wide.png",
        "bad clip": folder / "clip.mp4",
    }
    files["not an image"].write_text("these are words, not pixels\n")
    files["empty"].write_bytes(b"")
    Image.new("1", (20_000, 20_000)).save(files["huge"])  # 400 megapixels in 48 kB
    Image.new("1", (12_000, 40)).save(files["wide"])
    files["bad clip"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    return files


def _cer(predicted: str, truth: str) -> float:
    from torchmetrics.functional.text import char_error_rate

    return float(char_error_rate([predicted], [truth]))


# ------------------------------------------------------------------------- no server needed


def test_import_lstmvision_does_not_import_gradio():
    code = (
        "import sys, lstmvision, lstmvision.cli, lstmvision.app.served, lstmvision.app.digits\n"
        "assert 'gradio' not in sys.modules, 'gradio imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_app_help_is_local_by_default_and_states_the_upload_cap():
    from lstmvision.cli import app

    result = CliRunner().invoke(app, ["app", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "127.0.0.1" in text and "--share" in text and "--max-upload-mb" in text
    assert "default: 20" in text and "10,000 px a side" in text


def test_prefix_logits_are_the_answers_of_the_first_rows():
    """Row t of prefix_logits is the head on the reader run over rows 1..t alone (both for the
    shipped bidirectional model and a one-directional one); the last row is forward()."""
    from lstmvision.models import get_model

    torch.manual_seed(0)
    x = torch.rand(2, 1, 28, 28)
    for model in (
        lstmvision.load("row-lstm-mnist").model,
        get_model("row-lstm", hidden_size=16, bidirectional=False, num_layers=2).eval(),
    ):
        with torch.no_grad():
            prefixes = model.prefix_logits(x)  # (2, 28, 10)
            assert torch.allclose(prefixes[:, -1], model(x), atol=1e-5)
            for t in (1, 9, 20):
                alone = model.forward_head(model.reader((x[:, :, :t] - model.mean) / model.std))
                assert torch.allclose(prefixes[:, t - 1], alone, atol=1e-5)


def test_digit_views_agree_with_the_predictor(digits):
    from lstmvision.app.digits import read_digit

    model = lstmvision.load("row-lstm-mnist")
    path, label = digits[0]
    reading = read_digit(model, Image.open(path))
    assert reading.result.label == label
    final = dict(zip(reading.result.probabilities, reading.steps[-1].tolist()))
    assert final == pytest.approx(reading.result.probabilities, abs=1e-5)
    assert set(reading.gates) == {"input", "forget", "output", "cell"}
    assert all(v.shape == (28, 128) for v in reading.gates.values())
    assert 1 <= reading.settled() <= 28


def test_streamed_sample_is_the_predicted_one():
    from lstmvision.app.char_lm import stream

    model = lstmvision.load("char-lm-shakespeare")
    parts = list(stream(model, "ROMEO:", 0.8, 50, 3, every=8))
    assert len(parts) == 7 and all(b.startswith(a) for a, b in zip(parts, parts[1:]))
    assert parts[-1] == model.predict("ROMEO:", length=50, temperature=0.8, seed=3).text


def _tiny_forecaster(data_root: Path, folder: Path) -> Path:
    """A next-frame run folder on Moving MNIST, trained for 2 steps."""
    from lstmvision.tasks import get_task, runner

    overrides = {
        **get_task("next-frame").smoke_overrides,
        "data_root": str(data_root),
        "dataset": "moving-mnist",
        "frame_size": "64x64",
        "patch": 8,
        "train_size": 16,
        "val_size": 8,
        "test_size": 8,
    }
    return runner.train("next-frame", overrides, out=folder, quiet=True).run_dir


def test_one_model_per_tab_and_each_says_what_it_was_trained_on(tmp_path, data_root):
    from lstmvision.app.served import load_served
    from lstmvision.errors import ConfigError

    lstmvision.load("row-lstm-mnist").save_pretrained(tmp_path / "digits")
    with pytest.raises(ConfigError, match="both are digits models; name one model per tab"):
        load_served(["row-lstm-mnist", str(tmp_path / "digits")])
    served = load_served([str(tmp_path / "digits")], shipped=True)
    assert served["digits"].name == str(tmp_path / "digits")
    assert {"captions", "lines", "clip", "char-lm"} <= set(served)
    assert "trained on bronod" in served["lines"].summary()
    assert "[model card](/gradio_api/file=" in served["digits"].summary()
    assert served["digits"].card_markdown().startswith("# digits")
    default = load_served()  # no model named: the first shipped model of each tab
    assert default["lines"].name == "textline-handwriting"  # textline-print ships too
    assert {"digits", "captions", "lines", "clip", "char-lm"} <= set(default)
    assert default["forecast"].name == "next-frame-moving-mnist"
    run = _tiny_forecaster(data_root, tmp_path / "next-frame")  # a run folder takes its tab
    served = load_served([str(run)], shipped=True)
    assert served["forecast"].name == str(run) and served["digits"].name == "row-lstm-mnist"


def test_bench_app_times_the_three_requests(data_root):
    from lstmvision.bench import app as bench

    report = bench.run(repeats=1, threads=1, data_root=data_root)
    rows = {(r["request"], r["setting"]): r for r in report["requests"]}
    assert set(rows) == {
        ("digit", "row-lstm-mnist"),
        ("text line", "greedy"),
        ("text line", "beam 10 + LM"),
        ("caption", "beam 3"),
    }
    assert all(r["ms"] > 0 for r in rows.values()) and rows[("caption", "beam 3")]["target_ms"]
    assert "caption     beam 3" in bench.format_report(report)


def test_app_refuses_unknown_models_and_a_zero_cap_in_one_line():
    from lstmvision.cli import app

    result = CliRunner().invoke(app, ["app", "no-such-model"])
    assert result.exit_code == 1 and "no-such-model: no such run folder" in result.output
    result = CliRunner().invoke(app, ["app", "--max-upload-mb", "0"])
    assert result.exit_code == 1 and "--max-upload-mb 0: must be at least 1" in result.output


# ---------------------------------------------------------------------- every tab, via HTTP


def test_digit_tab_labels_uploaded_and_drawn_digits(client, digits):
    from gradio_client import handle_file

    for path, label in digits:
        probs, steps, gates, line = client.predict(handle_file(str(path)), api_name="/digit")
        assert probs["label"] == label and line.startswith(f"**{label}**")
        assert Path(steps).is_file() and Path(gates).is_file()
    path, label = digits[1]
    drawn = {"background": None, "layers": [], "composite": handle_file(str(path))}
    probs, *_ = client.predict(drawn, api_name="/digit_drawing")
    assert probs["label"] == label


def test_caption_tab_writes_known_words_with_their_attention(client, data_root):
    from gradio_client import handle_file

    from lstmvision.data.captions import load_photos

    photo = load_photos("flickr8k-1k", data_root)["test"][0].path
    text, gallery = client.predict(handle_file(str(photo)), 3, api_name="/caption")
    words = set(json.loads((PRETRAINED / "caption-flickr8k" / "vocab.json").read_text()))
    assert text.split() and set(text.split()) <= words
    assert [g["caption"].split(". ", 1)[1] for g in gallery] == text.split()
    assert all(Path(g["image"]).is_file() for g in gallery)


def test_textline_tab_transcribes_a_known_line(client, data_root):
    from gradio_client import handle_file

    from lstmvision.data.lines import line_splits

    line = line_splits("bronod", data_root)["test"][1]
    for mode in ("greedy", "beam search + LM"):
        text, picture = client.predict(handle_file(str(line.image)), mode, 10, api_name="/textline")
        assert _cer(text, line.text) < 0.1, (text, line.text)
        assert Image.open(picture).width > 400


def test_page_xml_comes_back_filled(client, data_root, tmp_path):
    """Two bronod test lines pasted on a page with their PAGE XML regions: the downloaded PAGE
    XML holds both transcriptions."""
    from gradio_client import handle_file

    from lstmvision.data.lines import line_splits

    lines = line_splits("bronod", data_root)["test"][1:3]
    images = [Image.open(ln.image).convert("L") for ln in lines]
    page = Image.new("L", (max(im.width for im in images) + 40, 200), 255)
    regions, y = [], 30
    for i, im in enumerate(images):
        page.paste(im, (20, y))
        points = f"20,{y} {20 + im.width},{y} {20 + im.width},{y + im.height} 20,{y + im.height}"
        regions.append(f'<TextLine id="l{i}"><Coords points="{points}"/></TextLine>')
        y += im.height + 40
    page.save(tmp_path / "page.png")
    xml = tmp_path / "page.xml"
    xml.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><PcGts xmlns="{PAGE_NS}"><Page '
        f'imageFilename="page.png" imageWidth="{page.width}" imageHeight="{page.height}">'
        f'<TextRegion id="r0">{"".join(regions)}</TextRegion></Page></PcGts>'
    )
    filled, texts = client.predict(
        handle_file(str(tmp_path / "page.png")),
        handle_file(str(xml)),
        "greedy",
        10,
        api_name="/page_xml",
    )
    got = {
        n.get("id"): n.find(f"{{{PAGE_NS}}}TextEquiv/{{{PAGE_NS}}}Unicode").text
        for n in ET.parse(filled).iter(f"{{{PAGE_NS}}}TextLine")
    }
    assert set(got) == {"l0", "l1"} and texts.count("\n") == 1
    for i, ln in enumerate(lines):
        assert _cer(got[f"l{i}"], ln.text) < 0.1, (got, ln.text)


SEED_MSE = r"model \*\*([\d.]+)\*\*, copying the last frame ([\d.]+)"


def test_video_tab_classifies_clips_and_forecasts(client, server, data_root, tmp_path):
    from gradio_client import handle_file

    from lstmvision.data import load_split
    from lstmvision.data.moving_mnist import moving_mnist

    probs, frames, line = client.predict(
        handle_file(str(data_root / "video" / "ucf101_ApplyEyeMakeup_sample.avi")),
        api_name="/clip",
    )
    assert probs["label"] in ("left", "right") and Image.open(frames).width >= 10 * 64
    for seed in (0, 1):
        probs, _, line = client.predict(seed, api_name="/clip_seed")
        assert f"the true motion: **{probs['label']}**" in line
    gif, png, line = client.predict(5, api_name="/forecast_seed")
    assert Image.open(gif).n_frames == 20 and Image.open(png).height > 3 * 64
    # the shipped forecaster: a test sequence forecast far better than copying its last frame
    model_mse, copy_mse = map(float, re.search(SEED_MSE, line).groups())
    assert model_mse < 0.6 * copy_mse, line
    # 20 frames uploaded as PNG files: the same MSE as the predictor on those frames
    frames = moving_mnist(load_split("mnist", data_root, "test")[0].numpy(), 1, 7, 20)[0]
    paths = []
    for t, frame in enumerate(frames):
        paths.append(tmp_path / f"frame{t:02d}.png")
        Image.fromarray(frame).save(paths[-1])
    _, _, line = client.predict([handle_file(str(p)) for p in paths], api_name="/forecast_upload")
    expected = lstmvision.load("next-frame-moving-mnist").predict(frames)
    assert f"model **{expected.mse:.1f}**" in line and f"frame {expected.baseline_mse:.1f}" in line


def test_char_lm_streams_the_sample(client):
    job = client.submit("ROMEO:", 0.8, 60, 1, api_name="/char_lm")
    final = job.result()
    updates = job.outputs()
    assert len(updates) >= 3 and updates[-1] == final
    expected = lstmvision.load("char-lm-shakespeare").predict(
        "ROMEO:", length=60, temperature=0.8, seed=1
    )
    assert final == expected.text


def test_inside_tab_draws_the_gradient_norms(client):
    picture, table = client.predict(20, 0, 8, api_name="/gradients")
    assert Image.open(picture).width > 300
    assert [row.split("|")[1].split()[0] for row in table.splitlines()[2:]] == [
        "rnn",
        "lstm",
        "gru",
    ]


def test_one_tab_does_not_wait_for_another(client, digits):
    """A digit read while the Inside tab computes a larger study comes back first (the queue
    runs different events side by side)."""
    from gradio_client import handle_file

    slow = client.submit(100, 100, 32, api_name="/gradients")
    time.sleep(0.3)
    start = time.monotonic()
    probs, *_ = client.predict(handle_file(str(digits[0][0])), api_name="/digit")
    took = time.monotonic() - start
    assert probs["label"] == digits[0][1]
    assert not slow.done() or took < 1.5, f"the digit waited {took:.1f} s"
    slow.result()


# -------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "endpoint, kind, message",
    [
        ("/digit", "not an image", "notes.png: not an image file this app can read"),
        ("/digit", "empty", r"empty.png: the file is empty \(0 bytes\)"),
        ("/digit", "huge", r"huge.png: far larger than this app reads"),
        ("/caption", "not an image", "notes.png: not an image file"),
        ("/textline", "huge", "huge.png: far larger"),
        ("/textline", "wide", "wide.png: 12000 x 40 pixels is larger than this app reads"),
        ("/clip", "bad clip", "clip.mp4: not a readable video"),
        ("/clip", "empty", r"the file is empty \(0 bytes\)"),
    ],
)
def test_bad_uploads_are_one_message_and_the_server_goes_on(
    client, bad_files, digits, endpoint, kind, message
):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    extra = {"/caption": (3,), "/textline": ("greedy", 10)}.get(endpoint, ())
    with pytest.raises(AppError, match=message) as error:
        client.predict(handle_file(str(bad_files[kind])), *extra, api_name=endpoint)
    assert "Traceback" not in str(error.value) and "/tmp" not in str(error.value)
    probs, *_ = client.predict(handle_file(str(digits[2][0])), api_name="/digit")
    assert probs["label"] == digits[2][1]


def test_empty_drawing_and_missing_upload_are_messages(client):
    from gradio_client.exceptions import AppError

    empty = {"background": None, "layers": [], "composite": None}
    with pytest.raises(AppError, match="the drawing is empty"):
        client.predict(empty, api_name="/digit_drawing")
    with pytest.raises(AppError, match="no digit image given"):
        client.predict(None, api_name="/digit")
    with pytest.raises(AppError, match="characters 'ßü' are not in the model's vocabulary"):
        client.predict("Grüß", 0.8, 20, 0, api_name="/char_lm")


def test_the_server_is_local_private_and_caps_uploads(server):
    """127.0.0.1 and no share link, analytics off, no web fonts, model cards served (and
    nothing else of a model folder), uploads over --max-upload-mb refused by the server."""
    import httpx

    url, log = server[0], server[1].read_text()
    assert "Running on local URL:  http://127.0.0.1:" in log and "gradio.live" not in log
    assert httpx.get(f"{url}config").json()["analytics_enabled"] is False
    for page in ("", "theme.css"):
        assert "fonts.googleapis.com" not in httpx.get(f"{url}{page}").text
    card = PRETRAINED.resolve() / "row-lstm-mnist" / "README.md"
    assert "# row-lstm-mnist" in httpx.get(f"{url}gradio_api/file={card}").text
    assert httpx.get(f"{url}gradio_api/file={card.with_name('config.json')}").status_code == 403
    big = b"\0" * (UPLOAD_MB * 1024 * 1024 + 1)
    reply = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", big)})
    assert reply.status_code == 413 and "exceeded" in reply.text


# ---------------------------------------------------------------------------- a real browser


def _browser():
    """Headless Debian Chromium under Selenium; skips (never in CI) when it is not installed."""
    _needs("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        reason = "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1600")
    return webdriver.Chrome(service=Service(driver), options=options)


def _draw_a_one(browser) -> None:
    """Pick the sketchpad's brush, draw a vertical stroke, press "Read the drawing"."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, "button[aria-label=Brush]").click()
    canvas = max(browser.find_elements(By.TAG_NAME, "canvas"), key=lambda c: c.size["width"])
    stroke = ActionChains(browser).move_to_element_with_offset(canvas, 0, -90).click_and_hold()
    for dy in range(-80, 91, 10):
        stroke.move_to_element_with_offset(canvas, 0, dy)
    stroke.release().perform()
    (read,) = [
        b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == "Read the drawing"
    ]
    read.click()


def test_a_browser_reads_an_uploaded_digit_shows_the_error_of_a_non_image_reads_a_drawing(
    server, digits, bad_files, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    upload = "#digit-file input[type=file]"
    try:
        browser.get(server[0])
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, upload))
        path, label = digits[0]
        browser.find_element(By.CSS_SELECTOR, upload).send_keys(str(path))
        shown = "#digit-label [data-testid=label-output-value]"
        wait.until(lambda b: [e.text for e in b.find_elements(By.CSS_SELECTOR, shown)] == [label])
        wait.until(lambda b: "the answer stays" in b.find_element(By.ID, "digit-answer").text)
        browser.save_screenshot(str(tmp_path / "digit.png"))
        if os.environ.get("LSTMVISION_SCREENSHOT"):
            browser.save_screenshot(str(DOCS / "app-screenshot.png"))
        browser.find_element(By.CSS_SELECTOR, "#digit-file button[aria-label=Clear]").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, upload))
        browser.find_element(By.CSS_SELECTOR, upload).send_keys(str(bad_files["not an image"]))
        toast = "[data-testid=toast-body]"
        wait.until(
            lambda b: any(
                "notes.png: not an image file this app can read" in e.text
                for e in b.find_elements(By.CSS_SELECTOR, toast)
            )
        )
        browser.save_screenshot(str(tmp_path / "not-an-image.png"))
        assert Image.open(tmp_path / "not-an-image.png").size[0] >= 1000
        _draw_a_one(browser)
        wait.until(lambda b: b.find_element(By.ID, "digit-answer").text.startswith("1 ("))
        browser.save_screenshot(str(tmp_path / "drawn.png"))
    finally:
        browser.quit()


def test_the_server_log_has_the_latency_of_each_request(server, digits, client):
    from gradio_client import handle_file

    client.predict(handle_file(str(digits[0][0])), api_name="/digit")
    log = server[1].read_text()
    times = [float(t) for t in re.findall(r"lstmvision.app: digit: ([\d.]+) ms", log)]
    assert times and all(0 < t < 10_000 for t in times)
    assert np.median(times) > 0
