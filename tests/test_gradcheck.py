"""``gradprop gradcheck``: the book's gradient check on the user's network, run in the sandbox.

The book's own layout (``fixtures/book_layout``) agrees everywhere; a copy with one wrong line in
Affine.backward differs, and the JAX reference says that backprop is the wrong side; MNIST is read
from the book's files (IDX or its pickle, which only the sandbox unpickles), and their absence is
a usage error that says what to do.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from gradprop import cli, gradcheck

BOOK = Path(__file__).resolve().parent.parent / "fixtures" / "book_layout" / "deep-learning-from-scratch"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["gradcheck", *argv, "--lang", "en"])
    return code, out.getvalue(), err.getvalue()


def fake_mnist(folder: Path, n: int = 4, kind: str = "idx") -> Path:
    """n random 28 x 28 images and labels as the book's dataset folder holds them."""
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "idx":
        for name, data, code in (("train-images-idx3-ubyte.gz", images, 3), ("train-labels-idx1-ubyte.gz", labels, 1)):
            head = bytes([0, 0, 8, code]) + b"".join(s.to_bytes(4, "big") for s in data.shape)
            (folder / name).write_bytes(gzip.compress(head + data.tobytes()))
    else:
        doc = {"train_img": images.reshape(n, 784), "train_label": labels, "test_img": images.reshape(n, 784)[:1],
               "test_label": labels[:1]}
        (folder / "mnist.pkl").write_bytes(pickle.dumps(doc, -1))
    return folder


def test_the_books_networks_agree_with_their_numerical_gradients():
    code, out, _ = run(str(BOOK), "--network", "TwoLayerNet")
    assert code == 0, out
    assert "TwoLayerNet(input_size=20, hidden_size=10, output_size=5)  on generated data, a batch of 3" in out
    assert "numerical gradient: your network's numerical_gradient(x, t)" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  ") and line.split()[0] in
            ("W1", "b1", "W2", "b2")]
    assert [r[0] for r in rows] == ["W1", "b1", "W2", "b2"] and all(r[-2:] == ["✓", "agree"] for r in rows)
    assert "reference: jax.grad of the book's TwoLayerNet at your weights" in out
    assert "✓ gradient and numerical_gradient agree for every parameter" in out


def test_a_wrong_backprop_differs_and_the_reference_names_the_wrong_side(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(BOOK, book)
    layers = book / "common" / "layers.py"
    layers.write_text(layers.read_text().replace("self.db = np.sum(dout, axis=0)", "self.db = dout[0]"))
    code, out, _ = run(str(book), "--network", "TwoLayerNet", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["schema"] == gradcheck.SCHEMA
    (net,) = doc["networks"]
    verdicts = {p["key"]: p["verdict"] for p in net["params"]}
    assert verdicts == {"W1": "agree", "b1": "differ", "W2": "agree", "b2": "differ"}
    b1 = next(p for p in net["params"] if p["key"] == "b1")
    assert b1["ref_gradient"] > 1e-3 > b1["ref_numerical"]  # the numerical gradient is the right one
    code, out, _ = run(str(book), "--network", "TwoLayerNet")
    assert "✗ b1: gradient and numerical_gradient differ (worst entry b1[" in out
    assert "the numerical gradient agrees with jax.grad of the book's network: backprop is wrong for b1" in out


@pytest.mark.parametrize("kind", ["idx", "pickle"])
def test_mnist_from_the_books_files(tmp_path, kind):
    dataset = fake_mnist(tmp_path / "dataset", kind=kind)
    code, out, _ = run(str(BOOK), "--network", "TwoLayerNet", "--mnist", str(dataset), "--numerical", "ours",
                       "--entries", "3")
    assert code == 0, out
    source = "train-images-idx3-ubyte.gz" if kind == "idx" else "mnist.pkl"
    assert "TwoLayerNet(input_size=784, hidden_size=50, output_size=10)  on MNIST x_train[:3] (" in out
    assert source in out and "at most 3 entries of each parameter" in out


def test_the_pickle_is_unpickled_where_the_users_code_runs(tmp_path):
    """A pickle is code: gradprop sends its bytes to the sandbox, which unpickles them."""
    from gradprop.sandbox import SandboxSession

    class Pid:
        def __reduce__(self):
            return os.getpid, ()

    (tmp_path / "net.py").write_text("class TwoLayerNet:\n    pass\n")
    with SandboxSession(tmp_path / "net.py") as session:
        value = session.unpickle(pickle.dumps({"pid": Pid(), "train_img": np.zeros((1, 784), np.uint8)}))
    assert value["pid"] != os.getpid() and value["train_img"].shape == (1, 784)


def test_missing_dataset_files_and_unknown_networks_are_usage_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = run(str(BOOK), "--mnist", str(tmp_path / "empty"))
    assert code == 2 and out == ""
    assert "no MNIST files at" in err and "It does not download them" in err and "dataset/mnist.py" in err
    code, _, err = run(str(BOOK), "--network", "ThreeLayerNet")
    assert code == 2 and "unknown network ThreeLayerNet; the networks are TwoLayerNet, MultiLayerNet" in err
    code, _, err = run(str(BOOK / "common" / "util.py"))
    assert code == 2 and "defines no TwoLayerNet / MultiLayerNet / MultiLayerNetExtend / SimpleConvNet" in err
