"""char-lm: truncated BPTT with the state carried across batches, sampling, real text, CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from lstmvision import cli
from lstmvision.data.text import StreamWindows
from lstmvision.models import get_model
from lstmvision.models.text import sample
from lstmvision.tasks import runner
from lstmvision.tasks.char_lm import CharLMConfig, CharLMModule

cli._register_train_commands()
TINY = {
    "embed_size": 8,
    "hidden_size": 24,
    "num_layers": 1,
    "seq_len": 40,
    "batch_size": 8,
    "val_fraction": 0.05,
}


def invoke(*args):
    result = CliRunner().invoke(cli.app, [str(a) for a in args])
    return result.exit_code, result.output


pytestmark = pytest.mark.filterwarnings("ignore:.*self.trainer.*reference is not registered")


def test_state_carries_across_batches_and_is_detached():
    torch.manual_seed(0)
    model = get_model("char-lm", chars="abcdefgh", embed_size=4, hidden_size=6, num_layers=2)
    module = CharLMModule(model, CharLMConfig())
    data = StreamWindows(
        torch.randint(0, 8, (2 * 3 * 5 + 1,)), batch_size=2, seq_len=5
    )  # 3 windows
    (x0, y0), (x1, y1) = data[0], data[1]
    module.training_step((x0, y0), 0)
    state = module.state
    assert all(
        not s.requires_grad and s.grad_fn is None for s in state
    )  # history cut between windows
    loss1 = module.training_step((x1, y1), 1)
    full, _ = model.run(torch.cat([x0, x1], dim=1))  # the two windows as one sequence: (B, 10, V)
    expected = F.cross_entropy(full[:, 5:].flatten(0, 1), y1.flatten())
    assert torch.allclose(loss1, expected, atol=1e-6)  # window 1 continued window 0's state
    module.on_train_epoch_start()  # a new pass over the streams restarts from zeros:
    module.training_step((x0, y0), 0)
    assert torch.allclose(module.state[0], state[0], atol=1e-6)  # the same state as the first time


def test_each_pass_starts_from_zeros_and_validation_keeps_the_training_state():
    torch.manual_seed(0)
    model = get_model("char-lm", chars="abcd", embed_size=3, hidden_size=4, num_layers=1)
    module = CharLMModule(model, CharLMConfig())
    x = torch.tensor([[0, 1, 2, 3]])
    module.training_step((x, x), 0)
    trained = module.state
    module.on_validation_epoch_start()
    assert module.state is None  # validation starts from zeros
    module.validation_step((x, x), 0)
    assert module.state is not None
    module.on_validation_epoch_end()
    assert module.state is trained  # training continues its own streams
    module.on_test_epoch_start()
    assert module.state is None  # so does the test pass


def test_gradient_stops_at_the_window_boundary():
    torch.manual_seed(0)
    model = get_model("char-lm", chars="abcd", embed_size=3, hidden_size=4, num_layers=1)
    module = CharLMModule(model, CharLMConfig())
    x0 = torch.tensor([[0, 0, 0]])
    module.training_step((x0, x0), 0)
    model.zero_grad()
    x1 = torch.tensor([[1, 2, 3]])  # never uses character 0
    module.training_step((x1, x1), 1).backward()
    assert model.embed.weight.grad[0].abs().sum() == 0  # no gradient flowed back into window 0
    assert model.embed.weight.grad[1].abs().sum() > 0


def test_sampling_is_reproducible_for_a_seed():
    torch.manual_seed(0)
    model = get_model("char-lm", chars="abcdefgh", embed_size=4, hidden_size=6, num_layers=1)
    prompt = torch.tensor([0, 1])
    a = sample(model, prompt, 40, 1.0, torch.Generator().manual_seed(5))
    b = sample(model, prompt, 40, 1.0, torch.Generator().manual_seed(5))
    c = sample(model, prompt, 40, 1.0, torch.Generator().manual_seed(6))
    assert a.shape == (40,) and torch.equal(a, b) and not torch.equal(a, c)
    greedy = sample(model, prompt, 10, 0.0)
    assert torch.equal(greedy, sample(model, prompt, 10, 0.0))


def test_training_on_real_text_lowers_the_loss_and_predict(data_root, tmp_path):
    cfg = {**TINY, "limit_train": 30000, "epochs": 2, "lr": 1e-2, "data_root": str(data_root)}
    result = runner.train("char-lm", cfg, out=tmp_path / "run", quiet=True)
    m = result.metrics
    assert (
        m["val_loss"] < 3.0 < torch.log(torch.tensor(65.0))
    )  # uniform over 65 characters: 4.17 nats
    assert abs(m["val_bpc"] - m["val_loss"] / 0.693147) < 1e-3
    assert (tmp_path / "run" / "activations.png").stat().st_size > 0
    curve = [
        row
        for row in (tmp_path / "run" / "logs" / "version_0" / "metrics.csv")
        .read_text()
        .splitlines()
    ]
    assert curve  # logged
    code, out = invoke(
        "predict", tmp_path / "run", "--prompt", "ROMEO:", "--length", "60", "--seed", "3", "--json"
    )
    assert code == 0, out
    text = json.loads(out)[0]["text"]
    assert text.startswith("ROMEO:") and len(text) == 66
    code2, out2 = invoke(
        "predict", tmp_path / "run", "--json", "--prompt=ROMEO:", "--length=60", "--seed=3"
    )
    assert json.loads(out2)[0]["text"] == text  # same seed, same sample
    code, out = invoke("predict", tmp_path / "run", "--prompt", "ROMEO:", "--length", "many")
    assert code == 1 and "--length: 'many' is not a valid integer" in out and "Traceback" not in out
    code, out = invoke("predict", tmp_path / "run", "--prompt", "ROMEO: ☃")
    assert code == 1 and "'☃'" in out and "vocabulary" in out and "Traceback" not in out
    for bad in ("nan", "inf"):  # nan reached torch.multinomial: a RuntimeError traceback
        code, out = invoke("predict", tmp_path / "run", "--temperature", bad)
        assert code == 1 and "must be a finite number" in out and "Traceback" not in out
    import lstmvision

    lm = lstmvision.load(tmp_path / "run")
    sampled = lm.predict("ROMEO:", length=60, seed=3)  # the Python API: the CLI's sample
    assert sampled.text == text and sampled.source == "ROMEO:" and sampled.seed == 3
    both = lm.predict(["ROMEO:", "JULIET:"], length=10, temperature=0.0)
    assert both[0].text.startswith("ROMEO:") and both[1].text.startswith("JULIET:")
    assert [len(g.text) for g in both] == [16, 17]
    greedy = lm.predict("ROMEO:", length=10, temperature=0.0, seed=1)  # no sampling: any seed
    assert greedy.text == both[0].text


def test_bad_text_files_get_one_clear_line(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "short.txt").write_text("to be or not to be\n" * 5)
    for name, words in (("empty.txt", "empty"), ("bin.txt", "binary"), ("short.txt", "too few")):
        code, out = invoke(
            "train", "char-lm", "--text-file", tmp_path / name, "--out", tmp_path / f"r-{name}"
        )
        assert (
            code == 1 and words in out and str(tmp_path / name) in out and "Traceback" not in out
        ), out
        assert not (tmp_path / f"r-{name}").exists()  # nothing written for bad data
