"""``lstmvision`` command line: a thin layer over ``lstmvision.tasks.runner`` (floor 4).

Every ``train TASK`` command is generated from the task's config dataclass, so ``--help`` lists
each key with its default, and a task added to the registry gets its command for free. ``predict``
reads the options of the run's own task (``Task.predict_options``), and its ``--help`` lists those
of every registered task; ``compare``, ``crossval`` and ``transfer study`` call
``lstmvision.studies``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import sys
import typing
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperCommand

from lstmvision.errors import ConfigError, LstmvisionError

app = typer.Typer(
    help="Recurrent neural networks for computer vision.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(
    help="Train a registered task (see `lstmvision tasks`).", no_args_is_help=True
)
bench_app = typer.Typer(help="Benchmarks that print measured figures.", no_args_is_help=True)
transfer_app = typer.Typer(help="Transfer learning helpers.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(bench_app, name="bench")
app.add_typer(transfer_app, name="transfer")
explain_app = typer.Typer(
    help="Pictures of what recurrent networks do inside.", no_args_is_help=True
)
app.add_typer(explain_app, name="explain")


SHIPPED = "(`lstmvision models --pretrained`)"


def user_errors(fn):
    """Turn a LstmvisionError, or an OSError (a path that cannot be read or written: a missing
    folder, a file where a folder should be, a full disk), into one line on stderr and exit code
    1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LstmvisionError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except BrokenPipeError:  # the reader stopped (`| head`): stop quietly, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
            raise typer.Exit(1) from None
        except OSError as e:  # a file or folder the command cannot read or write: no traceback
            where = f"{e.filename}: " if e.filename else ""
            reason = e.strerror or str(e)
            if isinstance(e, FileExistsError) and e.filename and Path(e.filename).is_file():
                reason = "a file, where a folder is needed"  # mkdir(exist_ok=True) on a file
            typer.echo(f"error: {where}{reason}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo(
                "interrupted (a training run continues with --out RUN_DIR --resume)", err=True
            )
            raise typer.Exit(130) from None

    return wrapper


def _print_metrics(metrics: dict) -> None:
    for key in sorted(metrics):
        value = metrics[key]
        shown = f"{value:.4f}" if isinstance(value, float) else value
        typer.echo(f"{key:>16}  {shown}")


@app.command("tasks")
@user_errors
def tasks_command():
    """List the registered tasks."""
    from lstmvision.tasks import TASKS

    for name in TASKS.names():
        typer.echo(f"{name:16} {TASKS.get(name).summary}")


@app.command("models")
@user_errors
def models_command(
    pretrained: bool = typer.Option(
        False, "--pretrained", help="list the trained models shipped with the package instead"
    ),
):
    """List the registered model architectures, or (--pretrained) the shipped trained models
    with their headline figure; `lstmvision.load(NAME)` and `predict NAME ...` use them."""
    if not pretrained:
        from lstmvision.models import list_models

        for name in list_models():
            typer.echo(name)
        return
    from lstmvision.inference.base import read_source
    from lstmvision.inference.card import headline
    from lstmvision.pretrained import catalog, names

    notes = catalog()
    sources = {name: read_source(name) for name in names()}
    name_width = max(map(len, sources), default=0) + 2
    task_width = max((len(src.task) for src in sources.values()), default=0) + 2
    for name, src in sources.items():
        figure = headline(src.metrics, notes.get(name, {}))
        typer.echo(f"{name:{name_width}}{src.task:{task_width}}{figure}")


def _train_command(task_cls):
    """Build ``train TASK`` with one option per config field (default shown, None = not given)."""
    from lstmvision.tasks.config import (
        RECIPES,
        field_docs,
        field_types,
        recipe_defaults,
        recipe_files,
    )

    docs, types_ = field_docs(task_cls.Config), field_types(task_cls.Config)
    defaults = recipe_defaults(task_cls.Config)
    params = []
    for f in dataclasses.fields(task_cls.Config):
        tp = types_[f.name]
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        decls = (
            [f"{flag}/--no-{flag[2:]}"] if tp in (bool, Optional[bool]) else [flag]
        )  # None: not given
        tp = tp if typing.get_origin(tp) is typing.Union else Optional[tp]
        option = typer.Option(
            None, *decls, help=docs.get(f.name, ""), show_default=str(defaults[f.name])
        )
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=tp)
        )
    run_options = {
        "out": (
            Optional[Path],
            typer.Option(None, "--out", help="run folder [default: runs/TASK/TIMESTAMP]"),
        ),
        "config": (
            Optional[Path],
            typer.Option(None, "--config", help="YAML file of config keys (CLI flags win)"),
        ),
        "resume": (
            bool,
            typer.Option(
                False,
                "--resume",
                help="continue the run in --out (default: the latest) from checkpoints/last.ckpt",
            ),
        ),
    }
    for name, (tp, option) in run_options.items():
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=tp)
        )

    @user_errors
    def command(**kwargs):
        from lstmvision.tasks.runner import train

        out, config, resume = kwargs.pop("out"), kwargs.pop("config"), kwargs.pop("resume")
        overrides = {k: v for k, v in kwargs.items() if v is not None}
        result = train(task_cls.name, overrides, config_file=config, out=out, resume=resume)
        typer.echo(f"run folder: {result.run_dir}")
        _print_metrics(
            {k: v for k, v in result.metrics.items() if k.startswith(("test_", "val_", "train_s"))}
        )

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    recipes = recipe_files(task_cls.Config)
    shown = defaults.get("dataset") or "the default data set"
    where = (
        "\n\nRecipe files (the defaults for each --dataset; other flags win over them), in "
        f"{RECIPES}:\n\n"
        + "\n\n".join(f"{name}: {path.relative_to(RECIPES)}" for name, path in recipes.items())
        if recipes
        else ""
    )
    command.__doc__ = (
        f"{task_cls.summary}\n\nThe defaults shown are the recipe of --dataset {shown}, the "
        f"settings behind README's figure for it.{where}"
    )
    return command


def _register_train_commands() -> None:
    """Finish the app: a ``train TASK`` command per registered task, then one-line summaries in
    every command list (:func:`_one_line_summaries`)."""
    from lstmvision.tasks import TASKS

    known = {c.name for c in train_app.registered_commands}
    for name in TASKS.names():
        if name not in known:
            train_app.command(name)(_train_command(TASKS.get(name)))
    _one_line_summaries(app)


@app.command("evaluate")
@user_errors
def evaluate_command(
    run_dir: Path = typer.Argument(
        ...,
        metavar="MODEL",
        help=f"a run folder, a saved model folder or a shipped model's name {SHIPPED}",
    ),
    split: str = typer.Option("test", help="test or val"),
    data_root: Optional[Path] = typer.Option(None, help="data folder (default: as in training)"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
    data: Optional[Path] = typer.Option(
        None,
        help="evaluate on this folder instead (textline: labels.tsv + lines/, or .gt.txt files)",
    ),
    out: Optional[Path] = typer.Option(
        None, help="folder for the task's report files (textline: per-line CSV)"
    ),
):
    """Evaluate a trained model on its data set's test (or val) split, or on --data; prints
    the same keys as its metrics.json (a shipped model: its card's figures)."""
    from lstmvision.tasks.runner import evaluate

    metrics = evaluate(run_dir, split, str(data_root) if data_root else None, data=data, out=out)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        _print_metrics(metrics)


METAVARS = {int: "INT", float: "NUMBER", str: "TEXT", Path: "PATH"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _metavar(tp: type) -> str:
    return METAVARS.get(tp, tp.__name__.upper())


def _predict_options_help() -> str:
    """Every registered task's ``predict`` options, read from the registry (the help's epilog)."""
    from lstmvision.tasks import TASKS

    rows, plain = [], []  # rows: (task, "--name TYPE", help)
    for name in TASKS.names():
        options = TASKS.get(name).predict_options
        rows += [(name, f"{_flag(k)} {_metavar(o.type)}", o.help) for k, o in options.items()]
        plain += [] if options else [name]
    width = max((len(flag) for _, flag, _ in rows), default=0)
    lines, task = ["Task options (a run takes those of its own task):"], None
    for name, flag, text in rows:
        if name != task:
            lines.append(f"{name}:")
            task = name
        lines.append(f"  {flag:{width}}  {text}")
    if plain:
        lines.append(f"no options: {', '.join(plain)}")
    return "\n".join(lines)


class PredictCommand(TyperCommand):
    """``predict``: its help ends with every registered task's options, read when it is shown."""

    def get_help(self, ctx) -> str:
        self.epilog = _predict_options_help()
        return super().get_help(ctx)


PREDICT_COMMAND = dict(  # the task's --name VALUE reach the command among its inputs
    cls=PredictCommand,
    context_settings={"ignore_unknown_options": True},
    options_metavar="[OPTIONS] [TASK OPTIONS]",
)


def _task_options(task_cls, run_dir: Path, words: list[str]) -> tuple[list[Path], dict]:
    """Split the words after RUN_DIR into input files and the task's ``--name VALUE`` (or
    ``--name=VALUE``) options, each value read as its ``PredictOption`` type. An option the task
    does not declare, a missing value or a value of the wrong type is one clear error."""
    import click

    from lstmvision.tasks.runner import refuse_predict_options

    declared = task_cls.predict_options
    inputs, options = [], {}
    words = iter(words)
    for word in words:
        if not word.startswith("-") or word == "-":
            inputs.append(Path(word))
            continue
        flag, given, value = word.partition("=")
        name = flag[2:].replace("-", "_")
        if not flag.startswith("--") or name not in declared:
            refuse_predict_options(task_cls, run_dir, [flag])
        tp = declared[name].type
        if not given:
            value = next(words, None)
            if value is None:
                raise ConfigError(f"{flag}: needs a value ({_metavar(tp)})")
        try:
            options[name] = click.types.convert_type(tp).convert(value, None, None)
        except click.BadParameter as e:
            raise ConfigError(f"{flag}: {e.message}") from None
    return inputs, options


@app.command(
    "transcribe",
    help="Transcribe text-line images with a textline model: a run folder, a saved model or a "
    "shipped name such as textline-handwriting (the same as predict).",
    **PREDICT_COMMAND,
)
@app.command("predict", **PREDICT_COMMAND)
@user_errors
def predict_command(
    run_dir: Path = typer.Argument(
        ...,
        metavar="MODEL",
        help=f"a run folder, a saved model folder or a shipped model's name {SHIPPED}",
    ),
    words: Optional[list[str]] = typer.Argument(
        None,
        metavar="INPUTS",
        help="input files (images: PNG/JPEG, any size and mode; videos; text files), and the "
        "options of the run's task: --name VALUE (listed below)",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list, one object per input"),
):
    """Predict with a trained model; one line (or JSON object) per input."""
    from lstmvision.inference.base import read_source
    from lstmvision.tasks import get_task
    from lstmvision.tasks.runner import predict

    task_cls = get_task(read_source(run_dir).task)
    inputs, options = _task_options(task_cls, run_dir, words or [])
    predictions, errors = predict(run_dir, inputs, **options)
    if as_json:
        typer.echo(json.dumps(predictions, indent=2, default=_unshown))
    else:
        task = task_cls()
        for p in predictions:
            typer.echo(task.format_prediction(p))
    for line in errors:
        typer.echo(f"error: {line}", err=True)
    if errors:
        raise typer.Exit(1)


def _unshown(value) -> None:
    """JSON has no place for arrays (a caption's attention weights): left out as null."""
    return None


@app.command("app")
@user_errors
def app_command(
    models: Optional[list[str]] = typer.Argument(
        None,
        metavar="NAME_OR_RUN",
        help=f"models to serve, one per tab: shipped names {SHIPPED}, saved model folders or run "
        "folders (e.g. a next-frame run); default: every shipped model",
        show_default=False,
    ),
    host: str = typer.Option(
        "127.0.0.1", help="address to listen on (0.0.0.0: every network interface)"
    ),
    port: int = typer.Option(7860, min=1, max=65535, help="port to listen on"),
    share: bool = typer.Option(
        False, "--share", help="also open a public gradio.live link (off: local only)"
    ),
    max_upload_mb: int = typer.Option(
        20,
        help="largest upload accepted, in MB (larger files are refused); images are read up to "
        "10,000 px a side and 40 megapixels, video frames up to 4096 px",
    ),
    shipped: bool = typer.Option(
        False, "--shipped", help="with models named: shipped models fill the tabs they leave"
    ),
    data_root: Optional[Path] = typer.Option(
        None, help="data folder (MNIST digits for the sequences made from a seed)"
    ),
    threads: Optional[int] = typer.Option(None, min=1, help="torch threads (default: torch's)"),
):
    """Open every system in the browser on your own input (a Gradio app): digits drawn or
    uploaded, captions with attention, text lines and PAGE XML, video clips and next frames,
    a character LM, and the vanishing gradient. Needs Gradio (the package's `app` extra).
    Local by default (127.0.0.1, no share link); Gradio's analytics are off."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:  # imported by the server, after its settings
        raise ConfigError("the app needs Gradio: pip install 'lstmvision[app]'")
    from lstmvision.app.server import serve

    serve(
        models,
        host,
        port,
        share,
        max_upload_mb,
        shipped,
        str(data_root) if data_root else None,
        threads,
    )


@app.command("save-pretrained")
@user_errors
def save_pretrained_command(
    source: Path = typer.Argument(..., help="a run folder (or a saved model) to share"),
    folder: Path = typer.Argument(..., help="the model folder to write"),
    half: bool = typer.Option(False, "--half", help="store the weights as float16 (half size)"),
):
    """Write a trained model as one shareable folder: config.json, model.safetensors, a model
    card README.md and the task's extra files (the layout of huggingface_hub's ModelHubMixin);
    `lstmvision.load(FOLDER)` and `predict FOLDER ...` read it back."""
    import lstmvision

    model = lstmvision.load(source)
    out = model.save_pretrained(folder, weights_dtype="float16" if half else "float32")
    typer.echo(f"wrote {out} (model card: {out / 'README.md'})")


@app.command("export")
@user_errors
def export_command(
    source: str = typer.Argument(
        ..., help=f"a shipped model's name {SHIPPED}, a saved model folder or a run folder"
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="the ONNX file to write; a captioner writes NAME.encoder.onnx and "
        "NAME.decoder.onnx beside it instead",
    ),
    fmt: str = typer.Option("onnx", "--format", help="export format: onnx"),
    opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset (default: 17)"),
):
    """Export a trained model as ONNX graph(s), each checked against torch by ONNX Runtime
    before it is written (docs/export.md). Needs the `export` extra: onnx and onnxruntime."""
    from lstmvision.export import export

    for g in export(source, out, format=fmt, opset=opset):
        typer.echo(
            f"wrote {g.path} ({', '.join(g.inputs)} -> {', '.join(g.outputs)}; ONNX Runtime "
            f"matches torch within {g.check_error:.1g})"
        )


@app.command("textline-lm")
@user_errors
def textline_lm_command(
    run_dir: Path = typer.Argument(..., help="a finished textline run folder"),
    order: Optional[int] = typer.Option(None, help="n-gram order (default: the run's lm_order, 5)"),
    data_root: Optional[Path] = typer.Option(None, help="data folder (default: as in training)"),
    as_json: bool = typer.Option(False, "--json", help="print the figures as JSON"),
):
    """Add a character n-gram LM to a trained textline run: fit on its training lines, tune the
    weight on validation, write lm.json, merge the LM metrics into metrics.json; prints the CER."""
    from lstmvision.tasks.textline_lm import add_lm

    report = add_lm(
        run_dir,
        order,
        str(data_root) if data_root else None,
        progress=lambda t: typer.echo(t, err=True),
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{'':10}{'greedy':>8}{'beam+LM':>9}")
    for split in ("val", "test"):
        if report.get(f"{split}_cer_lm") is not None:
            greedy, lm = report[f"{split}_cer_greedy"], report[f"{split}_cer_lm"]
            typer.echo(f"{split + ' CER':10}{greedy:8.4f}{lm:9.4f}")
    typer.echo(
        f"lm_weight {report['lm_weight']:g}, length_bonus {report['length_bonus']:g} "
        f"(tuned on validation); wrote {report['lm_file']}, metrics.json updated"
    )


@app.command("samples")
@user_errors
def samples_command(
    dataset: str = typer.Argument(..., help="mnist, fashion-mnist or usps"),
    out: Path = typer.Option(Path("samples"), help="folder to write PNG files into"),
    count: int = typer.Option(8, help="how many images (at least 1)"),
    split: str = typer.Option("test", help="train or test"),
    data_root: Optional[Path] = typer.Option(None, help="data folder"),
):
    """Write a few images of a data set as PNG files (to try `predict` on)."""
    from lstmvision.data.samples import export_samples

    for path in export_samples(dataset, out, count, split, data_root):
        typer.echo(path)


@bench_app.command("rnn")
@user_errors
def bench_rnn_command(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    repeats: int = typer.Option(
        10, min=1, help="timed repetitions per measurement (median reported)"
    ),
    threads: str = typer.Option("1,2", help="comma list of torch thread counts to measure at"),
):
    """Forward+backward time of our RNN, LSTM, GRU (equations, fast) and ConvLSTM layers against
    torch.nn (row-MNIST, long sequences, Moving MNIST)."""
    from lstmvision.bench import rnn

    try:
        counts = tuple(int(count) for count in threads.split(","))
    except ValueError:
        counts = ()
    if not counts or any(count < 1 for count in counts):
        raise typer.BadParameter(
            f"not a comma list of thread counts >= 1: {threads!r}", param_hint="--threads"
        )
    report = rnn.run(repeats=repeats, threads=counts)
    typer.echo(json.dumps(report, indent=2) if as_json else rnn.format_report(report))


@bench_app.command("textline")
@user_errors
def bench_textline_command(
    run_dir: Optional[Path] = typer.Option(
        None, "--run", help="a textline run folder (default: an untrained recipe-size model)"
    ),
    images: Optional[list[Path]] = typer.Argument(
        None, help="line images (default: median and longest bronod lines)"
    ),
    repeats: int = typer.Option(20, min=1, help="timed repetitions per line (median reported)"),
    beam: int = typer.Option(1, min=1, help="beam width (1 = greedy)"),
    threads: Optional[int] = typer.Option(None, min=1, help="torch threads (default: torch's)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
):
    """Milliseconds to transcribe one text line (load, normalise, CRNN, decode)."""
    from lstmvision.bench import textline

    report = textline.run(run_dir, images, repeats=repeats, beam=beam, threads=threads)
    typer.echo(json.dumps(report, indent=2) if as_json else textline.format_report(report))


@bench_app.command("load")
@user_errors
def bench_load_command(
    names: Optional[list[str]] = typer.Argument(
        None, help="shipped models to time [default: all of them]"
    ),
    repeats: int = typer.Option(20, min=1, help="timed predictions per model (median reported)"),
    cold: int = typer.Option(3, min=0, help="fresh processes timed per model (median; 0: skip)"),
    data_root: Optional[Path] = typer.Option(None, help="data folder of the example inputs"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
):
    """Cold start (a fresh `python -c "import lstmvision; lstmvision.load(NAME).predict(x)"`)
    and per-item latency of the shipped models, beside the targets."""
    from lstmvision.bench import load

    report = load.run(names, repeats=repeats, cold=cold, data_root=data_root)
    typer.echo(json.dumps(report, indent=2) if as_json else load.format_report(report))


@bench_app.command("export")
@user_errors
def bench_export_command(
    names: Optional[list[str]] = typer.Argument(
        None, help="models to time (names, saved folders or runs; default: the shipped ones)"
    ),
    threads: int = typer.Option(2, min=1, help="threads of torch and of ONNX Runtime alike"),
    repeats: int = typer.Option(50, min=1, help="timed runs per graph (median reported)"),
    data_root: Optional[Path] = typer.Option(None, help="data folder of the example inputs"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
):
    """Per-item latency of exported models in torch and in ONNX Runtime (CPU), and the ratio."""
    from lstmvision.bench import export
    from lstmvision.export.runtime import require
    from lstmvision.pretrained import names as shipped

    require()
    report = export.run(names or shipped(), threads=threads, repeats=repeats, data_root=data_root)
    typer.echo(json.dumps(report, indent=2) if as_json else export.format_report(report))


@bench_app.command("app")
@user_errors
def bench_app_command(
    repeats: int = typer.Option(20, min=1, help="timed requests of each kind (median reported)"),
    threads: Optional[int] = typer.Option(None, min=1, help="torch threads (default: torch's)"),
    data_root: Optional[Path] = typer.Option(None, help="data folder of the example inputs"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
):
    """Server-side milliseconds of the app's requests (a digit, a text line, a caption at beam
    3) with the shipped models, beside the targets."""
    from lstmvision.bench import app as bench

    report = bench.run(repeats=repeats, threads=threads, data_root=data_root)
    typer.echo(json.dumps(report, indent=2) if as_json else bench.format_report(report))


@bench_app.command("features")
@user_errors
def bench_features_command(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    repeats: int = typer.Option(5, min=1, help="timed repetitions per model (median reported)"),
):
    """Feature-extraction throughput (images/s) of each CNN backbone on this machine."""
    from lstmvision.bench import features

    report = features.run(repeats=repeats)
    typer.echo(json.dumps(report, indent=2) if as_json else features.format_report(report))


@bench_app.command("caption")
@user_errors
def bench_caption_command(
    photo: Optional[Path] = typer.Argument(
        None, help="photo to caption [default: the first test photo of flickr8k-1k]"
    ),
    run_dir: Optional[Path] = typer.Option(
        None, "--run", help="a `caption` run folder [default: untrained, recipe sizes]"
    ),
    model: str = typer.Option(
        "show-attend-tell", help="untrained model when no --run: show-attend-tell or show-and-tell"
    ),
    beam: list[int] = typer.Option([1, 3], min=1, help="beam widths to time (repeat the option)"),
    repeats: int = typer.Option(10, min=1, help="timed repetitions (median reported)"),
    data_root: Optional[Path] = typer.Option(None, help="data folder (for the default photo)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
):
    """Milliseconds to caption one photo (read, encode, greedy/beam decoding) on this machine."""
    from lstmvision.bench import caption

    if photo is None:
        from lstmvision.data import resolve_data_root
        from lstmvision.data.captions import load_photos

        photo = load_photos("flickr8k-1k", resolve_data_root(data_root))["test"][0].path
    report = caption.run(photo, run_dir, model, beams=tuple(beam), repeats=repeats)
    typer.echo(json.dumps(report, indent=2) if as_json else caption.format_report(report))


@bench_app.command("video")
@user_errors
def bench_video_command(
    path: Optional[Path] = typer.Argument(
        None, help="video file (default: the shared video/vtest.avi)"
    ),
    repeats: int = typer.Option(3, min=1, help="timed whole-file passes (median reported)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    patch: Optional[int] = typer.Option(
        None, help="time the step with this --patch instead of the recipe's"
    ),
    hidden_sizes: Optional[str] = typer.Option(
        None, help="time the step with these --hidden-sizes instead of the recipe's"
    ),
    kernel_size: Optional[int] = typer.Option(
        None, help="time the step with this --kernel-size instead of the recipe's"
    ),
    readout_hidden: Optional[int] = typer.Option(
        None, help="time the step with this --readout-hidden instead of the recipe's"
    ),
):
    """Video decoding (frames/s, PyAV; RGB, 64x48 grey); seconds per Moving MNIST training step."""
    from lstmvision.bench import video

    model = {
        "patch": patch,
        "hidden_sizes": hidden_sizes,
        "kernel_size": kernel_size,
        "readout_hidden": readout_hidden,
    }
    report = video.run(
        path, repeats=repeats, model={k: v for k, v in model.items() if v is not None}
    )
    typer.echo(json.dumps(report, indent=2) if as_json else video.format_report(report))


@transfer_app.command("advise")
@user_errors
def transfer_advise_command(
    target_size: int = typer.Option(..., help="number of labelled target images"),
    similarity: str = typer.Option(
        ..., help="similarity of the target data to the source: high or low"
    ),
):
    """The seed's four-scenario rule of thumb: which transfer mode, and why."""
    from lstmvision.tasks.transfer import format_advice

    typer.echo(format_advice(target_size, similarity))


@transfer_app.command("codes")
@user_errors
def transfer_codes_command(
    source: str = typer.Argument(..., help="a `cnn` run folder, or imagenet (EfficientNet-Lite0)"),
    dataset: str = typer.Option("mnist", help="mnist, fashion-mnist or usps"),
    split: str = typer.Option("train", help="train or test"),
    out: Path = typer.Option(..., help="safetensors file to write (codes, labels)"),
    limit: Optional[int] = typer.Option(None, help="only the first N images"),
    image_size: Optional[int] = typer.Option(
        None, help="resize the images first (as the source was trained)"
    ),
    data_root: Optional[Path] = typer.Option(None, help="data folder"),
):
    """Extract "CNN codes" (penultimate activations) of a data set to a file."""
    from lstmvision.files import check_output_file
    from lstmvision.tasks.transfer import extract_codes

    check_output_file(out, example="codes.safetensors")  # before extracting, not after
    summary = extract_codes(source, dataset, split, out, data_root, limit, image_size)
    typer.echo(f"{summary['file']}: {summary['examples']} codes of {summary['features']} features")


def _csv_option(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@transfer_app.command("study")
@user_errors
def transfer_study_command(
    out: Path = typer.Option(
        Path("runs/transfer-study"),
        help="study folder (run again to continue an interrupted study)",
    ),
    source_run: Optional[Path] = typer.Option(
        None, help="MNIST source run (default: train lenet5-modern on MNIST first)"
    ),
    sources: str = typer.Option(
        "mnist,imagenet", help="comma list: mnist (our CNN), imagenet (EfficientNet-Lite0)"
    ),
    targets: str = typer.Option(
        "usps,fashion-mnist", help="comma list: usps (similar to MNIST), fashion-mnist (different)"
    ),
    sizes: str = typer.Option(
        "100,1000,all", help="comma list of labelled-image counts; all = the whole training split"
    ),
    modes: str = typer.Option(
        "scratch,codes,finetune-top,finetune-all", help="comma list of modes"
    ),
    seed: int = typer.Option(0, help="random seed of every run"),
    data_root: Optional[Path] = typer.Option(None, help="data folder"),
):
    """The seed's 2x2 transfer grid, measured: a `cnn` run per cell; results.csv/.md, study.png."""
    from lstmvision.studies.transfer_study import format_markdown, study

    try:
        size_list = [None if s == "all" else int(s) for s in _csv_option(sizes)]
    except ValueError:
        raise ConfigError(
            f"--sizes {sizes!r}: give numbers of labels or 'all', separated by commas"
        ) from None
    rows = study(
        out,
        source_run,
        _csv_option(sources),
        _csv_option(targets),
        size_list,
        _csv_option(modes),
        str(data_root) if data_root else None,
        seed,
    )
    typer.echo(format_markdown(rows))
    typer.echo(f"study folder: {out} (results.csv, results.md, study.png)")


@explain_app.command("gradients")
@user_errors
def explain_gradients_command(
    out: Path = typer.Option(Path("gradients.png"), help="PNG file to write"),
    seq_len: int = typer.Option(100, min=2, help="adding-problem sequence length T"),
    steps: int = typer.Option(
        1500, min=0, help="training steps per cell before measuring (0: untrained)"
    ),
    hidden_size: int = typer.Option(64, min=1, help="hidden units of each cell"),
    seed: int = typer.Option(0, help="random seed"),
):
    """Plot ||dLoss/dx_t|| against t for RNN, LSTM and GRU briefly trained on the adding problem."""
    from lstmvision.files import check_output_file
    from lstmvision.viz.explain import gradient_study

    check_output_file(out, example="gradients.png")  # before the training, not after it
    path, curves = gradient_study(out, seq_len, steps, hidden_size, seed=seed)
    for label, norms in curves.items():
        typer.echo(f"{label:28} |dL/dx_1| {float(norms[0]):.2e}   |dL/dx_T| {float(norms[-1]):.2e}")
    typer.echo(path)


@explain_app.command("gates")
@user_errors
def explain_gates_command(
    run_dir: Path = typer.Argument(..., help="a row-lstm run folder (--cell lstm)"),
    image: Path = typer.Argument(
        ..., help="a digit image (PNG/JPEG), e.g. from `lstmvision samples mnist`"
    ),
    out: Path = typer.Option(Path("gates.png"), help="PNG file to write"),
):
    """Input, forget and output gates and cell state of a trained Row LSTM over an image's rows."""
    from lstmvision.files import check_output_file
    from lstmvision.viz.explain import gates_of_run

    check_output_file(out, example="gates.png")
    typer.echo(gates_of_run(run_dir, image, out))


COMPARE_CELLS = "rnn,lstm,gru"  # compare's --cells default (lstmvision.studies.compare.CELLS)


@app.command("compare")
@user_errors
def compare_command(
    out: Path = typer.Option(
        Path("runs/compare"), help="folder of the runs and the table (rerun to continue)"
    ),
    tasks: str = typer.Option(
        "row-mnist,seq-mnist,pmnist,adding-100,adding-400",
        help="comma list of benchmarks, or pixel-gen alone (the PixelRNN models)",
    ),
    cells: str = typer.Option(COMPARE_CELLS, help="comma list of cells"),
    epochs: Optional[int] = typer.Option(
        None, help="epochs of every run [default: each benchmark's recipe]"
    ),
    limit_train: Optional[int] = typer.Option(
        None, help="train on the first N examples only (a quick look)"
    ),
    seed: int = typer.Option(0, help="random seed of every run"),
    data_root: Optional[Path] = typer.Option(None, help="data folder"),
    accelerator: str = typer.Option(
        "cpu", help="cpu, gpu, mps or auto (Lightning); s/epoch is that device's"
    ),
):
    """RNN vs LSTM vs GRU on sequential, permuted and row MNIST and the adding problem: a table.
    `--tasks pixel-gen`: the three PixelRNN models instead (docs/pixel-gen.md), in OUT/pixel-gen."""
    from lstmvision.studies.compare import compare, format_markdown

    task_list = _csv_option(tasks)
    if "pixel-gen" in task_list:
        _compare_pixel_gen(out, task_list, cells, epochs, limit_train, data_root)
        return
    rows = compare(
        out,
        task_list,
        _csv_option(cells),
        epochs,
        limit_train,
        data_root,
        seed,
        accelerator=accelerator,
    )
    typer.echo(format_markdown(rows))
    typer.echo(f"results: {out}/results.csv, {out}/results.md")


def _compare_pixel_gen(out, task_list, cells, epochs, limit_train, data_root) -> None:
    """`compare --tasks pixel-gen`: lstmvision.studies.pixel_gen's table of the three models."""
    from lstmvision.studies.pixel_gen import COMMANDS, format_markdown, study

    if task_list != ["pixel-gen"] or cells != COMPARE_CELLS:
        raise ConfigError(
            "compare: pixel-gen compares its own three models "
            f"({', '.join(COMMANDS)}); give it alone, without --cells: --tasks pixel-gen"
        )
    overrides = {k: v for k, v in (("epochs", epochs), ("limit_train", limit_train)) if v}
    rows = study(out / "pixel-gen", data_root=data_root, overrides=overrides)
    typer.echo(format_markdown(rows))
    typer.echo(f"results: {out}/pixel-gen/results.csv, {out}/pixel-gen/results.md")


@app.command("crossval")
@user_errors
def crossval_command(
    task: str = typer.Argument("text-classify", help="the task to cross-validate (text-classify)"),
    out: Path = typer.Option(
        Path("runs/crossval-text-classify"), help="folder of the fold runs and the table"
    ),
    folds: int = typer.Option(10, min=2, help="number of folds"),
    only: Optional[str] = typer.Option(None, help="comma list of the folds to run [default: all]"),
    embeddings: str = typer.Option("glove,scratch", help="comma list: glove, scratch"),
    epochs: Optional[int] = typer.Option(None, help="epochs per fold [default: the task's recipe]"),
    ensemble: Optional[int] = typer.Option(
        None, help="BiLSTMs averaged per fold [default: the task's recipe]"
    ),
    adversarial: Optional[float] = typer.Option(
        None,
        help="size of the adversarial move of the word vectors, 0: off "
        "[default: the task's recipe]",
    ),
    seed: int = typer.Option(0, help="random seed of every run"),
    data_root: Optional[Path] = typer.Option(None, help="data folder"),
):
    """k-fold cross-validation of text-classify on MR: results.csv, .md with published figures."""
    from lstmvision.studies.crossval import crossval, format_markdown

    if task != "text-classify":
        raise ConfigError(f"crossval: only text-classify is cross-validated, not {task!r}")
    overrides = {
        "seed": seed,
        **({"epochs": epochs} if epochs else {}),
        **({"ensemble": ensemble} if ensemble else {}),
        **({"adversarial": adversarial} if adversarial is not None else {}),
        **({"data_root": str(data_root)} if data_root else {}),
    }
    try:
        chosen = [int(k) for k in _csv_option(only)] if only else None
    except ValueError:
        raise ConfigError(f"--only {only!r}: give fold numbers separated by commas") from None
    rows = crossval(out, folds, _csv_option(embeddings), chosen, overrides)
    typer.echo(format_markdown(rows, folds))
    typer.echo(f"results: {out}/results.csv, {out}/results.md")


def _one_line_summaries(typer_app: typer.Typer) -> None:
    """Give every command of ``typer_app`` (and of its groups) a short help of its docstring's
    first paragraph on one line: the command lists of ``--help`` otherwise keep the docstring's
    line breaks, ragged across the table."""
    for info in typer_app.registered_commands:
        text = info.help or inspect.getdoc(info.callback) or ""
        if info.short_help is None and text:
            info.short_help = " ".join(text.split("\n\n")[0].split())
    for group in typer_app.registered_groups:
        _one_line_summaries(group.typer_instance)


def main() -> None:
    _register_train_commands()
    app(prog_name="lstmvision")


if __name__ == "__main__":
    sys.exit(main())
