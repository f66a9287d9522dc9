"""Loading layer sets as students lay them out: notebooks, renamed modules, chapter folders,
one class per file, training scripts next to the layers, two files defining one item, and
item names in other cases. Every folder is built here, small and real."""
from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradprop
from gradprop.grading import DEFAULT_CHAPTER
from gradprop.loader import BOOK_ITEMS, load, match_name, submission_name
from gradprop.properties.registry import items_up_to
from gradprop.sandbox import SandboxSession
from gradprop.session import InProcessSession

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

MUL = """
class {name}:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x
"""
RELU = """
class {name}:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        return np.where(self.mask, 0, dout)
"""
AFFINE = """
class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T{bug}
"""
FUNCTIONS = """
import numpy as np


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    if y.ndim == 1:
        y, t = y.reshape(1, -1), t.reshape(1, -1)
    if t.size == y.size:
        t = t.argmax(axis=1)
    return -np.sum(np.log(y[np.arange(len(y)), t] + 1e-7)) / len(y)
"""
NET = """
class TwoLayerNet:
    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.params = {"W1": weight_init_std * np.random.randn(input_size, hidden_size)}
        self.affine = Affine(self.params["W1"], np.zeros(hidden_size))
"""


def build(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def notebook(path: Path, *cells: str) -> Path:
    """A notebook whose code cells are ``cells`` (with a markdown cell first, as people write)."""
    doc = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
           "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# my layers\n"]}]
           + [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
               "source": textwrap.dedent(c).lstrip("\n").splitlines(True)} for c in cells]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


#: modules imported from here are Python's or gradprop's own, not a submission's: they stay
_INSTALLED = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, os.path.dirname(gradprop.__file__))})


def _submission_module(module) -> bool:
    file = getattr(module, "__file__", None)
    if file is None:  # a namespace package the loader made for a folder, or a built-in module
        return module.__name__ not in sys.builtin_module_names
    return not os.path.realpath(file).startswith(_INSTALLED)


@pytest.fixture(autouse=True)
def _restore_import_state():
    """Loading in this process adds to sys.path and sys.modules: give each test a clean slate.
    Only the submissions' modules go: a standard or gradprop module imported for the first time
    during a test stays, since modules imported before it may hold it (forgetting multiprocessing
    broke the pickling of a later test's worker process)."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if _submission_module(sys.modules[name]):
            del sys.modules[name]


def items(loaded) -> set[str]:
    return {match_name(group, {k: isinstance(v, type) for k, v in loaded.namespace.items() if callable(v)})
            for group in BOOK_ITEMS} - {None}


# --- name matching -------------------------------------------------------------------------------


def test_book_items_match_the_registry():
    from gradprop.properties.registry import REGISTRY

    assert {tuple(item.names) for item in REGISTRY.values()} == set(BOOK_ITEMS)


@pytest.mark.parametrize("group, defined, expected", [
    (("Relu", "ReLU"), {"ReLu": True}, "ReLu"),
    (("Relu", "ReLU"), {"RELU": True, "Relu": True}, "Relu"),  # the exact name first
    (("Relu", "ReLU"), {"ReLu": True, "RELU": True}, None),    # two variants: no guess
    (("Relu", "ReLU"), {"relu": False}, None),                 # a function is not the Relu layer
    (("Relu", "ReLU"), {"_Relu": True}, None),                 # a private helper is not the item
    (("softmax",), {"Softmax": True}, None),                   # ... nor a class the softmax function
    (("cross_entropy_error",), {"crossEntropyError": False}, "crossEntropyError"),
    (("SoftmaxWithLoss",), {"Softmaxwithloss": True}, "Softmaxwithloss"),
])
def test_match_name_takes_only_unambiguous_variants_of_the_right_kind(group, defined, expected):
    assert match_name(group, defined) == expected


def test_case_and_underscore_variants_are_found(tmp_path):
    build(tmp_path, {"my_layers.py": "import numpy as np\n" + MUL.format(name="Mullayer") + RELU.format(name="ReLu")
                     + "\nclass soft_max_with_loss:\n    pass\n\nclass Softmax:\n    pass\n"})
    loaded = load(tmp_path)
    with InProcessSession(path=str(tmp_path)) as s:
        assert s.resolve(("MulLayer",)) == "Mullayer"
        assert s.resolve(("Relu", "ReLU")) == "ReLu"
        assert s.resolve(("SoftmaxWithLoss",)) == "soft_max_with_loss"
        assert s.resolve(("softmax",)) is None  # class Softmax is not the function softmax
    assert "took class ReLu from my_layers.py as Relu" in loaded.notes


def test_two_variants_of_one_name_are_reported_not_guessed(tmp_path):
    build(tmp_path, {"layers.py": "import numpy as np\n" + RELU.format(name="ReLu") + RELU.format(name="RELU")})
    loaded = load(tmp_path / "layers.py")
    assert "Relu" not in items(loaded)
    assert any("Relu: RELU and ReLu could both be it; not guessing" in n for n in loaded.notes)


def test_submission_name_of_a_notebook(tmp_path):
    assert submission_name(notebook(tmp_path / "hw.ipynb", "x = 1")) == "hw"
    assert submission_name("missing/hw.ipynb") == "hw"


# --- folders -------------------------------------------------------------------------------------


def test_renamed_modules_and_the_naive_layers_of_the_book(tmp_path):
    build(tmp_path, {
        "common/__init__.py": "",
        "common/function.py": FUNCTIONS,
        "common/layer.py": "import numpy as np\nfrom common.function import *\n" + RELU.format(name="Relu")
                           + AFFINE.format(bug=""),
        "common/activation_function.py": "import numpy as np\n\ndef sigmoid(x):\n    return 1 / (1 + np.exp(-x))\n",
        "ch05/layer_naive.py": MUL.format(name="MulLayer"),
        "ch05/buy_apple.py": "from layer_naive import *\n\nmul = MulLayer()\nprint(mul.forward(100, 2))\n",
    })
    loaded = load(tmp_path)
    assert items(loaded) == {"MulLayer", "Relu", "Affine", "softmax", "cross_entropy_error"}
    assert loaded.origins["MulLayer"] == "ch05/layer_naive.py"
    assert loaded.origins["softmax"] == "common/function.py"
    assert loaded.origins["Affine"] == "common/layer.py"
    assert any("ch05/buy_apple.py (it calls MulLayer, line 3)" in n for n in loaded.notes)


def test_chapter_folder_with_a_commons_package_and_relative_imports(tmp_path):
    build(tmp_path, {
        "chapter05/commons/__init__.py": "",
        "chapter05/commons/functions.py": FUNCTIONS,
        "chapter05/commons/layers.py": "import numpy as np\nfrom .functions import softmax, cross_entropy_error\n"
                                       "\nclass SoftmaxWithLoss:\n    def forward(self, x, t):\n"
                                       "        self.y = softmax(x)\n        return cross_entropy_error(self.y, t)\n"
                                       + AFFINE.format(bug=""),
        "chapter05/two_layer_net.py": "import numpy as np\nfrom commons.layers import *\n" + NET,
    })
    with InProcessSession(path=str(tmp_path)) as s:
        assert s.import_error is None
        assert s.origins["SoftmaxWithLoss"] == "chapter05/commons/layers.py"
        assert s.origins["TwoLayerNet"] == "chapter05/two_layer_net.py"
        loss = s.new("SoftmaxWithLoss")
        value = s.call(loss, "forward", np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]])).value
        assert value == pytest.approx(np.log(2), abs=1e-6)  # the relative import reached softmax
        net = s.new("TwoLayerNet", 3, 2, 1)
        assert s.get(net, "params", "W1").shape == (3, 2)
        # the snippet's import line names the module a student writes from the submission's folder
        assert s.origin("SoftmaxWithLoss", "x") == "chapter05.commons.layers"


def test_one_class_per_file(tmp_path):
    build(tmp_path, {
        "Affine.py": "import numpy as np\n" + AFFINE.format(bug=""),
        "Relu.py": "import numpy as np\n" + RELU.format(name="Relu"),
        "mul_layer.py": MUL.format(name="MulLayer"),
        "softmax.py": FUNCTIONS,
        "SoftmaxWithLoss.py": "from softmax import softmax, cross_entropy_error\n\nclass SoftmaxWithLoss:\n"
                              "    def forward(self, x, t):\n        return cross_entropy_error(softmax(x), t)\n",
    })
    loaded = load(tmp_path)
    assert items(loaded) == {"Affine", "Relu", "MulLayer", "softmax", "cross_entropy_error", "SoftmaxWithLoss"}
    assert loaded.origins == {"MulLayer": "mul_layer.py", "Relu": "Relu.py", "Affine": "Affine.py",
                              "softmax": "softmax.py", "cross_entropy_error": "softmax.py",
                              "SoftmaxWithLoss": "SoftmaxWithLoss.py"}


TRAIN = """
import numpy as np
from notes import *

raise SystemExit("the training script ran")
"""


def test_training_scripts_next_to_the_notes_are_never_run(tmp_path):
    build(tmp_path, {
        "notes.py": "import numpy as np\n" + MUL.format(name="MulLayer") + AFFINE.format(bug=""),
        "5.7.4_backprop_learning.py": TRAIN,
        "train_neuralnet.py": "from dataset.mnist import load_mnist\n(x, t), _ = load_mnist()\nwhile True:\n    pass\n",
        # a network file that also trains at its top level: its class is taken, its training is not run
        "two_layer_net.py": "import numpy as np\nfrom notes import *\n" + NET
                            + "\nnetwork = TwoLayerNet(784, 50, 10)\nraise SystemExit('trained at import')\n",
    })
    loaded = load(tmp_path)
    assert items(loaded) == {"MulLayer", "Affine", "TwoLayerNet"}
    assert any("5.7.4_backprop_learning.py (it calls SystemExit" in n and "train_neuralnet.py" in n
               for n in loaded.notes)
    assert "two_layer_net.py: took its definitions only; left out line 9 (it calls TwoLayerNet) " \
           "and 1 more statement" in loaded.notes


def test_two_files_defining_one_item_take_the_one_the_network_imports(tmp_path):
    build(tmp_path, {
        "common/layers.py": "import numpy as np\n" + AFFINE.format(bug=""),
        "scratch/affine_try.py": "import numpy as np\n" + AFFINE.format(bug=" * 2"),
        "two_layer_net.py": "import numpy as np\nfrom scratch.affine_try import Affine\n" + NET,
    })
    loaded = load(tmp_path)
    assert loaded.origins["Affine"] == "scratch/affine_try.py"  # not the book's file: the network decides
    assert ("Affine is defined in 2 files (common/layers.py, scratch/affine_try.py); took the one in "
            "scratch/affine_try.py (two_layer_net.py imports it)") in loaded.notes
    layer = loaded.namespace["Affine"](np.eye(2), np.zeros(2))
    layer.forward(np.ones((1, 2)))
    assert layer.backward(np.ones((1, 2))).tolist() == [[2.0, 2.0]]  # the scratch copy, as the network runs


def test_two_files_defining_one_item_without_a_network_prefer_the_books_file(tmp_path):
    build(tmp_path, {
        "common/layers.py": "import numpy as np\n" + AFFINE.format(bug=""),
        "affine_old.py": "import numpy as np\n" + AFFINE.format(bug=" * 2"),
    })
    loaded = load(tmp_path)
    assert loaded.origins["Affine"] == "common/layers.py"
    assert any(n.startswith("Affine is defined in 2 files") for n in loaded.notes)


def test_the_book_layout_takes_chapter_5s_network(tmp_path):
    build(tmp_path, {
        "common/functions.py": FUNCTIONS,
        "common/layers.py": "import numpy as np\nfrom common.functions import *\n" + AFFINE.format(bug=""),
        "ch04/two_layer_net.py": "import sys, os\nsys.path.append(os.pardir)\nimport numpy as np\n"
                                 "from common.functions import *\n" + NET.replace("self.affine", "self.old"),
        "ch05/two_layer_net.py": "import sys, os\nsys.path.append(os.pardir)\nimport numpy as np\n"
                                 "from common.layers import *\n" + NET,
        "ch05/layer_naive.py": MUL.format(name="MulLayer") + MUL.format(name="AddLayer"),
    })
    loaded = load(tmp_path)
    assert loaded.origins["TwoLayerNet"] == "ch05/two_layer_net.py"
    assert loaded.origins["AddLayer"] == "ch05/layer_naive.py"
    assert hasattr(loaded.namespace["TwoLayerNet"](2, 2, 2), "affine")


def test_the_items_of_chapters_6_and_7_are_found_where_the_book_and_study_notebooks_put_them(tmp_path):
    """common/optimizer.py, common/multi_layer_net*.py, common/util.py, ch07/simple_convnet.py;
    a notebook of optimizers next to a training script (names in other cases: Adagrad, RMSProp)."""
    book = Path(__file__).resolve().parent.parent / "fixtures" / "book_layout" / "deep-learning-from-scratch"
    loaded = load(book)
    assert {k: loaded.origins[k] for k in ("SGD", "Adam", "MultiLayerNet", "MultiLayerNetExtend", "im2col",
                                            "col2im", "SimpleConvNet")} == {
        "SGD": "common/optimizer.py", "Adam": "common/optimizer.py", "MultiLayerNet": "common/multi_layer_net.py",
        "MultiLayerNetExtend": "common/multi_layer_net_extend.py", "im2col": "common/util.py",
        "col2im": "common/util.py", "SimpleConvNet": "ch07/simple_convnet.py"}
    notebook(tmp_path / "ch06" / "optimizers.ipynb", """
        import numpy as np

        class Adagrad:
            def __init__(self, lr=0.01):
                self.lr, self.h = lr, None
            def update(self, params, grads):
                pass
        """, """
        class RMSProp:
            def __init__(self, lr=0.01, decay_rate=0.99):
                self.lr = lr
            def update(self, params, grads):
                pass
        """, "optimizer = Adagrad()\nfor i in range(10000):\n    optimizer.update(network.params, grads)\n")
    build(tmp_path, {"ch06/train.py": "from common.multi_layer_net import MultiLayerNet\nnet = MultiLayerNet(784, [100], 10)\n"})
    loaded = load(tmp_path)
    assert items(loaded) == {"Adagrad", "RMSProp"}  # taken as AdaGrad and RMSprop
    assert "took class Adagrad from ch06/optimizers.ipynb as AdaGrad" in loaded.notes
    assert loaded.origins == {"Adagrad": "ch06/optimizers.ipynb", "RMSProp": "ch06/optimizers.ipynb"}


def test_a_folder_whose_only_item_file_cannot_be_imported_is_an_import_error(tmp_path):
    build(tmp_path, {"layers.py": "import numpy as np\nimport not_a_module_anywhere\n" + AFFINE.format(bug=""),
                     "ok_script.py": "print('hi')\n"})
    loaded = load(tmp_path)  # the item is there, and using it raises the import's error (import-error)
    with pytest.raises(ImportError, match="No module named 'not_a_module_anywhere'"):
        loaded.namespace["Affine"](np.ones((1, 1)), np.ones(1))


def test_a_broken_scratch_file_costs_only_itself(tmp_path):
    build(tmp_path, {"layers.py": "import numpy as np\n" + AFFINE.format(bug=""),
                     "plots.py": "import not_a_module_anywhere\n" + RELU.format(name="Relu"),
                     "typo.py": "class Sigmoid(:\n"})
    loaded = load(tmp_path)
    assert items(loaded) == {"Affine", "Relu", "Sigmoid"}  # Sigmoid: its file's syntax error when used
    assert "plots.py could not be imported: ModuleNotFoundError: No module named 'not_a_module_anywhere' " \
           "(line 1 of plots.py)" in loaded.notes
    assert any(n.startswith("typo.py is not valid Python for the Python 3.") and "(line 1" in n for n in loaded.notes)
    with pytest.raises(ImportError, match=r"typo.py could not be imported: SyntaxError: .*Python 3\.\d+\.\d+ grades it"):
        loaded.namespace["Sigmoid"]()
    # Relu is defined only by the file that cannot be imported: it fails with that file's error
    assert loaded.origins["Relu"] == "plots.py"
    with pytest.raises(ImportError, match="^plots.py could not be imported: ModuleNotFoundError"):
        loaded.namespace["Relu"]()


def test_an_item_whose_file_fails_says_why_through_the_sandbox(tmp_path):
    build(tmp_path, {"common/functions.py": FUNCTIONS,
                     "common/layers.py": "import numpy as np\nfrom common.function import softmax\n" + AFFINE.format(bug="")})
    with SandboxSession(tmp_path, time_limit=5) as s:
        assert s.import_error is None
        assert s.call("softmax", None, np.zeros(2)).value.tolist() == [0.5, 0.5]
        with pytest.raises(Exception, match="common/layers.py could not be imported: ModuleNotFoundError: No module "
                                            "named 'common.function' \\(line 2 of common/layers.py\\)"):
            s.call(s.new("Affine", np.eye(2), np.zeros(2)), "forward", np.ones((1, 2)))


# --- notebooks -----------------------------------------------------------------------------------


def test_a_notebook_is_graded_on_its_definitions(tmp_path):
    nb = notebook(
        tmp_path / "hw.ipynb",
        "%matplotlib inline\nimport numpy as np\n!pip install numpy",
        MUL.format(name="MulLayer") + "\nlayer = MulLayer()\nprint(layer.forward(2, 3))\n",
        AFFINE.format(bug=" * 2"),
        AFFINE.format(bug=""),  # pasted again, fixed: Jupyter runs the last one
        "network = TwoLayerNet(784, 50, 10)\ngrads = network.gradient(x_train, t_train)",
        "for i in range(10 ** 9):\n    network.gradient(x_train[i:i+1], t_train[i:i+1])",
        "%%time\nraise SystemExit('a cell magic ran')",
    )
    loaded = load(nb)
    assert items(loaded) == {"MulLayer", "Affine"}
    layer = loaded.namespace["Affine"](np.eye(2), np.zeros(2))
    layer.forward(np.ones((1, 2)))
    assert layer.backward(np.ones((1, 2))).tolist() == [[1.0, 1.0]]  # the last definition
    assert loaded.notes == [
        "hw.ipynb cell 2: left out lines 1, 3 (IPython magic or shell command)",
        "hw.ipynb cell 3: took its definitions only; left out line 9 (it calls MulLayer) and 1 more statement",
        "hw.ipynb cell 6 skipped: it calls TwoLayerNet (line 1)",
        "hw.ipynb cell 7 skipped: it runs a loop that calls network.gradient on x_train[...] (line 1)",
        "hw.ipynb cell 8 skipped: it is a %%time cell, not Python",
    ]
    assert loaded.origins == {"MulLayer": "hw.ipynb", "Affine": "hw.ipynb"}


def test_a_cell_that_fails_is_named_and_the_later_cells_still_count(tmp_path):
    nb = notebook(tmp_path / "hw.ipynb", "import numpy as np\nfrom common.layers import *",
                  MUL.format(name="MulLayer"), "def f(:\n    pass")
    loaded = load(nb)
    assert "MulLayer" in items(loaded)
    assert loaded.notes[0] == ("hw.ipynb cell 2, line 2: the import failed (ModuleNotFoundError: No module named "
                               "'common'); what uses it fails with import-error, the rest of the cell was kept")
    assert loaded.notes[1] == "hw.ipynb cell 4 skipped: it is not valid Python (line 1: invalid syntax)"


def test_a_folder_holding_a_notebook(tmp_path):
    notebook(tmp_path / "week5" / "layers.ipynb", "import numpy as np", RELU.format(name="Relu"))
    notebook(tmp_path / ".ipynb_checkpoints" / "layers-checkpoint.ipynb", MUL.format(name="MulLayer"))
    loaded = load(tmp_path)
    assert items(loaded) == {"Relu"}  # Jupyter's checkpoint copies are not the submission
    assert loaded.origins == {"Relu": "week5/layers.ipynb"}


def test_the_notes_notebook_defines_what_the_notes_file_does():
    nb, py = load(EXAMPLES / "notes.ipynb"), load(EXAMPLES / "notes.py")
    assert items(py) == {"MulLayer", "AddLayer", "ReLU", "Sigmoid", "Affine", "SoftmaxWithLoss"}
    # the notebook's TwoLayerNet cell imports the book's common/, not beside it here: the class is
    # kept (the rest of the cell is), and fails as a missing dependency when used
    assert items(nb) == items(py) | {"TwoLayerNet"}
    assert any("cell 15, line 8: the import failed" in n and "No module named 'common'" in n for n in nb.notes)


# --- through the sandbox -------------------------------------------------------------------------


def test_sandbox_reports_origins_notes_and_notebook_lines(tmp_path):
    nb = notebook(tmp_path / "hw.ipynb", "import numpy as np",
                  "x = np.arange(3)\nprint(x)\n\nclass Relu:\n    def forward(self, x):\n"
                  "        return x * self.missing\n",
                  "while True:\n    pass")
    with SandboxSession(nb, time_limit=5) as s:
        assert s.import_error is None
        assert s.origins == {"Relu": "hw.ipynb"}
        assert "hw.ipynb cell 4 skipped: it runs a loop (line 1)" in s.load_notes
        assert s.origin("Relu", "fallback").startswith("# run this in a new cell at the end of hw.ipynb")
        layer = s.new("Relu")
        with pytest.raises(Exception) as info:
            s.call(layer, "forward", np.ones(2))
        assert "at cell 3, line 6 of hw.ipynb: return x * self.missing" in str(info.value)


def test_sandbox_finds_variants_in_a_folder_and_never_runs_its_training(tmp_path):
    build(tmp_path, {
        "common/layer.py": "import numpy as np\n" + MUL.format(name="Mullayer"),
        "train.py": "from common.layer import *\nwhile True:\n    pass\n",
    })
    with SandboxSession(tmp_path, time_limit=5, import_time_limit=5) as s:
        assert s.import_error is None  # a hang at import would have been a timeout here
        assert s.resolve(("MulLayer",)) == "Mullayer"
        assert s.origins == {"Mullayer": "common/layer.py"}
        assert s.origin("Mullayer", "fallback") == "common.layer"
        layer = s.new("Mullayer")
        assert s.call(layer, "forward", 2.0, 3.0).value == 6.0


def test_grade_on_the_notes_notebook_gives_the_notes_files_grades(tmp_path):
    from gradprop.cli import main

    nb = tmp_path / "in" / "notes_nb.ipynb"
    nb.parent.mkdir()
    nb.write_bytes((EXAMPLES / "notes.ipynb").read_bytes())
    out = tmp_path / "out"
    assert main(["grade", str(EXAMPLES / "notes.py"), str(nb), "--out", str(out),
                 "--max-examples", "3", "--time-limit", "5", "-j", "1"]) == 0
    rows = {line.split(",", 1)[0]: line.split(",", 1)[1] for line in (out / "grades.csv").read_text().splitlines()[1:]}
    assert rows["notes_nb"] == rows["notes"]
    score, max_score = rows["notes"].split(",")[:2]
    assert score == "4.00"  # MulLayer, AddLayer, Relu, Sigmoid (examples/notes.py)
    # the items of chapters <= 5 (a later chapter's item counts by default only where it is defined)
    assert float(max_score) == len(items_up_to(DEFAULT_CHAPTER))
    py, ipynb = (json.loads((out / name / "results.json").read_text()) for name in ("notes", "notes_nb"))
    # the same, but for what the notebook's failed `from common... import *` would have given: TwoLayerNet
    # (not in the file) and softmax in SoftmaxWithLoss (a NameError in the file) are missing dependencies
    same = {t["name"]: (t["score"], t["tags"]) for t in py["tests"]} | {
        "TwoLayerNet": (0.0, ["import-error"]), "SoftmaxWithLoss": (0.0, ["import-error"])}
    assert {t["name"]: (t["score"], t["tags"]) for t in ipynb["tests"]} == same
    affine = next(t["output"] for t in ipynb["tests"] if t["name"] == "Affine")
    assert "at cell 12, line 78 of notes_nb.ipynb: dX = dX.reshape(*self.original_x_shape)" in affine
    assert "# run this in a new cell at the end of notes_nb.ipynb, after its definition cells" in affine
    assert "How your submission was read:" in ipynb["output"] and "cell 15, line 8: the import failed" in ipynb["output"]


# --- reproduction snippets -----------------------------------------------------------------------


@pytest.mark.parametrize("files, submission, expected", [
    ({"common/functions.py": FUNCTIONS, "ch05/cross_entropy_error.py": FUNCTIONS.replace("1e-7)) /", "1e-7)) * 2 /")},
     ".", "from ch05.cross_entropy_error import cross_entropy_error"),
    ({"hw.py": FUNCTIONS.replace("1e-7)) /", "1e-7)) * 2 /")}, "hw.py", "from hw import cross_entropy_error"),
])
def test_the_snippet_imports_the_item_from_the_file_that_defines_it(tmp_path, files, submission, expected):
    from hypothesis import settings

    from gradprop.properties.registry import REGISTRY
    from gradprop.properties.runner import evaluate_item

    build(tmp_path, files)
    if submission == ".":  # the broken copy must be the one taken: the book's file is correct
        (tmp_path / "two_layer_net.py").write_text("from ch05.cross_entropy_error import *\n" + NET)
    with InProcessSession(path=str(tmp_path / submission)) as s:
        outcomes = evaluate_item(s, REGISTRY["cross_entropy_error"], "common.layers",
                                 settings(max_examples=5, database=None, derandomize=True))
    wrong = [o for o in outcomes if o.tag == "wrong-forward"]
    assert wrong and expected in wrong[0].message


def test_packages_installed_beside_the_submission_are_imported_whole(tmp_path):
    build(tmp_path, {"venv/lib/python3/site-packages/helper.py": "VALUE = len([1, 2])\n",
                     "hw.py": "from helper import VALUE\nimport numpy as np\n" + MUL.format(name="MulLayer")})
    sys.path.insert(0, str(tmp_path / "venv/lib/python3/site-packages"))
    loaded = load(tmp_path / "hw.py")
    assert loaded.namespace["VALUE"] == 2  # computed by a call: the module ran whole
    assert loaded.notes == []


def test_a_hang_in_a_notebook_layer_is_placed_in_its_cell(tmp_path):
    nb = notebook(tmp_path / "hw.ipynb", "import numpy as np",
                  "class Relu:\n    def forward(self, x):\n        while True:\n            x = x + 0\n")
    with SandboxSession(nb, time_limit=1, import_time_limit=30) as s:
        with pytest.raises(Exception) as info:
            s.call(s.new("Relu"), "forward", np.ones(2))
    assert "[timeout]" in str(info.value)
    assert "cell 3, line 4 of hw.ipynb: x = x + 0" in str(info.value) or \
           "cell 3, line 3 of hw.ipynb: while True:" in str(info.value)


# --- what counts as a definition -----------------------------------------------------------------


def _left_out(source: str, notebook: bool = False) -> list[tuple[int, str]]:
    import ast

    from gradprop.notebook import split

    return split(ast.parse(textwrap.dedent(source)), notebook=notebook).left_out


def test_definitions_kept_and_the_rest_named():
    source = """
        import sys, os
        sys.path.append(os.pardir)
        try:
            import cupy as xp
        except ImportError:
            import numpy as xp
        from common.functions import *
        EPS = delta * 2
        SHAPE = (2, 3)
        plt.plot(x, y)
        (x_train, t_train), _ = load_mnist(normalize=True)
        for i in range(3):
            network.gradient(x_train, t_train)
        cache[0] = 1

        if __name__ == "__main__":
            main()
    """
    assert _left_out(source) == [(11, "it calls plt.plot on x"), (12, "it calls load_mnist"),
                                 (13, "it runs a loop that calls network.gradient on x_train"),
                                 (15, "it stores into an object, it does not define a name")]
    assert _left_out(source, notebook=True)[-1] == (17, "it is the main block")
    assert _left_out("import numpy as np\nX = np.ones(3)\nY = X\n") == [(2, "it calls np.ones"),
                                                                     (3, "it uses X, which is left out")]


def test_an_nbformat_3_notebook(tmp_path):
    doc = {"nbformat": 3, "worksheets": [{"cells": [
        {"cell_type": "code", "input": ["import numpy as np\n"]},
        {"cell_type": "code", "input": MUL.format(name="MulLayer").splitlines(True)}]}]}
    (tmp_path / "old.ipynb").write_text(json.dumps(doc))
    assert items(load(tmp_path / "old.ipynb")) == {"MulLayer"}


def test_a_folder_that_is_a_package_with_relative_imports(tmp_path):
    hw = build(tmp_path / "hw", {"__init__.py": "", "functions.py": FUNCTIONS,
                                 "layers.py": "import numpy as np\nfrom .functions import softmax\n"
                                              "\nclass SoftmaxWithLoss:\n    def forward(self, x, t):\n"
                                              "        return softmax(x)\n"})
    loaded = load(hw)
    assert loaded.origins == {"softmax": "functions.py", "cross_entropy_error": "functions.py",
                              "SoftmaxWithLoss": "layers.py"}
    assert loaded.namespace["SoftmaxWithLoss"]().forward(np.zeros(2), None).tolist() == [0.5, 0.5]


def test_a_second_layer_set_gets_its_own_helpers_not_the_first_ones(tmp_path):
    """Layer sets loaded one after another in one process (the suite checks its fixtures so):
    a helper module of the same name, beside the layers or on a path they add, is each one's own."""
    for n, name in ((1, "first"), (2, "second")):
        loaded = load(build(tmp_path / name, {
            "layers.py": "import os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'lib'))\n"
                         "from helper import SCALE\nfrom mathutil import OFFSET\n" + MUL.format(name="MulLayer"),
            "helper.py": f"SCALE = {n}\n",
            "lib/mathutil.py": f"OFFSET = {n}\n",
        }) / "layers.py")
        assert (loaded.namespace["SCALE"], loaded.namespace["OFFSET"]) == (n, n), name
