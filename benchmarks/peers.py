"""gradprop's gradient check side by side with its peers, in one process, on the same layers and inputs.

    pip install -e '.[bench]'        # torch==2.13.0, the CPU build
    python benchmarks/peers.py

Definitions (the printed caption repeats them):

- **A check** verifies one layer's backward on ONE input, all its gradients (dx, dW, db, ...).
  The input is the item's "main" case in ``cases.py``: realistic, modest shapes (Affine x (8, 20),
  W (20, 10); Convolution x (2, 3, 8, 8), W (4, 3, 3, 3); TwoLayerNet 20-10-5 on a batch of 8).
  Every method checks gradprop's own correct layers (``gradprop.layers``):
  - gradprop: ``check_backward`` (against ``jax.vjp`` of the reference, random dout) then
    ``check_numerical`` (one random projection of the central difference of the layer's own
    forward) on one Case, through an ``InProcessSession``. *Warm*: after a warm-up check on the
    same shapes, so the reference's jitted vjp is compiled. *Cold*: the first check on those
    shapes in this process, with an empty persistent compile cache (a new shape costs a jit
    compile, ~100 ms); the JAX backend itself is started before any timing.
  - torch slow / fast: the numpy layer wrapped in a ``torch.autograd.Function`` on float64
    tensors, ``torch.autograd.gradcheck(fn, inputs, fast_mode=False / True)`` with its default
    tolerances; TwoLayerNet as a Function of its 4 params returning ``loss(x, t)``.
  - jax check_grads: ``jax.test_util.check_grads(f, args, order=1, modes=["rev"])`` where f is
    the jitted JAX reference with the non-differentiated arguments fixed (it checks the reference,
    not the numpy layer: see "caught").
  - book: the book's ``numerical_gradient`` (h = 1e-4, entry by entry) of sum(forward * dout) for
    every differentiated argument, against backward(dout); pass when allclose(rtol=1e-3,
    atol=1e-5), gradcheck's criterion. TwoLayerNet as the book's gradient_check.py does it.
  softmax and cross_entropy_error have no backward and are left out.
- **ms per check**: median over repeats (each on fresh values of the same shapes), time.perf_counter.
- **Forward calls per check**: counted by wrapping the layer's forward (TwoLayerNet: ``loss``) with
  a counter; for jax check_grads, calls of the reference function.
- **Caught**: every broken fixture in ``fixtures/broken/`` for these items is loaded, and each method
  checks it on the same three inputs (the "main", "batch-1" and "other" cases of ``cases.py``). A
  method catches a fixture if it reports a failure or raises on any of the three. The headline
  count is over fixtures whose expected tag is a gradient tag (wrong-gradient, wrong-shape); the
  others (forward bugs, mutation, stale state, exceptions) are counted separately, and count for a
  method only if that method flags them. gradprop is counted twice: its two checks on the same
  three inputs (the apples-to-apples figure), and its whole suite (``evaluate_item``'s properties
  under the ``ci`` profile, Hypothesis choosing the inputs, stopping at the first core failure).
  jax check_grads is run on the fixture's numpy layer wrapped as a ``jax.custom_vjp`` function
  (forward and backward through ``jax.pure_callback``), since on the reference it never sees one.
  Correct variants in ``fixtures/correct/`` are checked the same way: a flag there is a false alarm.
  Loss layers and the network are called as the book calls them (backward(1), gradient(x, t)) and
  the wrappers scale by the upstream gradient.

Results go to ``benchmarks/results/peers.json`` (per item ms, plus the caught counts) and
``benchmarks/results/peers_fixtures.json`` (each fixture's verdict per method, the environment).
Nothing here asserts on time: the targets are read off the table.
"""
from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

# A fresh persistent compile cache and no store of reference answers, so that "cold" means a real
# jit compile (set before gradprop's oracle reads them).
_CACHE = tempfile.mkdtemp(prefix="gradprop-bench-jax-")
os.environ["GRADPROP_JAX_CACHE"] = _CACHE
os.environ["GRADPROP_STORE"] = "off"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hypothesis import Phase, settings  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import gradprop.layers as layers  # noqa: E402
from gradprop.findings import CORE  # noqa: E402
from gradprop.loader import load_layer_set  # noqa: E402
from gradprop.properties import oracle  # noqa: E402
from gradprop.properties.checks import Target, check_backward, check_numerical, properties_for  # noqa: E402
from gradprop.properties.model import Case  # noqa: E402
from gradprop.properties.registry import REGISTRY  # noqa: E402
from gradprop.properties.runner import run_property  # noqa: E402
from gradprop.session import InProcessSession  # noqa: E402

from cases import GRADS, ITEMS, VARIANTS, BenchCase, Runner, book_check, describe, make_case, resolve  # noqa: E402
from torch_gradcheck import torch_check  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("gradprop", "torch_slow", "torch_fast", "jax_check_grads", "book")
GRADIENT_TAGS = ("wrong-gradient", "wrong-shape")
#: the fixtures' meta-test settings: ci, without the shrink phase (tests/test_fixtures.py)
CI = settings(settings.get_profile("ci"), phases=[Phase.explicit, Phase.reuse, Phase.generate])
#: timing: at least MIN_REPEATS, then more while under BUDGET_S per method and item
MIN_REPEATS, MAX_REPEATS, BUDGET_S = 3, 21, 1.0


# --- counting forward calls ---------------------------------------------------------------------

CALLS = {"forward": 0}


def counted(namespace: dict[str, Any], item: str) -> dict[str, Any]:
    """The namespace with the item's class replaced by a subclass whose forward (a network's
    loss) counts its calls."""
    cls = resolve(namespace, item)
    method = "loss" if item == "TwoLayerNet" else "forward"
    original = getattr(cls, method)

    def counting(self, *args, **kwargs):
        CALLS["forward"] += 1
        return original(self, *args, **kwargs)

    sub = type(cls.__name__, (cls,), {method: counting})
    return {**namespace, **{name: sub for name, value in namespace.items() if value is cls}}


def count_calls(check: Callable[[], Any]) -> int:
    CALLS["forward"] = 0
    check()
    return CALLS["forward"]


# --- one check per method --------------------------------------------------------------------------


def to_case(case: BenchCase) -> Case:
    return Case(dict(case.init), dict(case.inputs), case.seed)


def gradprop_check(namespace: dict[str, Any], item: str, case: BenchCase) -> None:
    """check_backward + check_numerical on one case; raises a Finding when either fails."""
    session = InProcessSession(namespace=namespace)
    entry = REGISTRY[item]
    target = Target(session, entry, session.resolve(entry.names), "benchmark")
    check_backward(target, to_case(case))
    check_numerical(target, to_case(case))


@functools.cache
def _jitted_reference(item: str, static: tuple) -> Callable:
    """The item's reference, jitted once per item and static arguments (stride, pad, a scale)."""
    entry = REGISTRY[item]
    return jax.jit(lambda diff, arrays: entry.reference(**diff, **arrays, **dict(static)))


def reference_function(namespace: dict[str, Any], item: str, case: BenchCase) -> tuple[Callable, tuple]:
    """(f, args) for check_grads: the jitted reference of the differentiated arguments, every other
    argument fixed (a Dropout's mask read off the correct layer's output, as gradprop does)."""
    entry = REGISTRY[item]
    gcase = to_case(case)
    if entry.observe is not None:
        runner = Runner(resolve(namespace, item), item, case)
        gcase = entry.observe(gcase, runner.forward(runner.values())[1])
    args = oracle.arguments(gcase, entry)
    params = inspect.signature(entry.reference).parameters
    fixed = {k: v for k, v in args.items() if k in params and k not in entry.wrt}
    arrays = {k: v for k, v in fixed.items() if isinstance(v, np.ndarray)}
    jitted = _jitted_reference(item, tuple(sorted((k, v) for k, v in fixed.items() if k not in arrays)))

    def f(*diff):
        CALLS["forward"] += 1
        return jitted(dict(zip(entry.wrt, diff)), arrays)

    return f, tuple(jnp.asarray(np.asarray(args[k], dtype=np.float64)) for k in entry.wrt)


def jax_wrapped_layer(runner: Runner) -> tuple[Callable, tuple]:
    """The numpy layer as a JAX function (custom_vjp, numpy through pure_callback), for check_grads."""
    values = runner.values()
    out_shape = jax.ShapeDtypeStruct(np.shape(runner.forward(runner.values())[1]), jnp.float64)
    grad_shapes = tuple(jax.ShapeDtypeStruct(np.shape(values[k]), jnp.float64) for k in runner.wrt)

    def forward_np(*args):
        return np.asarray(runner.forward(dict(zip(runner.wrt, map(np.array, args))))[1], dtype=np.float64)

    def backward_np(g, *args):
        layer, _ = runner.forward(dict(zip(runner.wrt, map(np.array, args))))
        dout = float(g) if runner.loss or runner.network else np.array(g)
        grads = runner.backward(layer, dout)
        return tuple(np.asarray(grads[k], dtype=np.float64) for k in runner.wrt)

    @jax.custom_vjp
    def f(*args):
        return jax.pure_callback(forward_np, out_shape, *args)

    def f_fwd(*args):
        return f(*args), args

    def f_bwd(args, g):
        return jax.pure_callback(backward_np, grad_shapes, g, *args)

    f.defvjp(f_fwd, f_bwd)
    return f, tuple(jnp.asarray(values[k]) for k in runner.wrt)


def peer_check(method: str, namespace: dict[str, Any], item: str, case: BenchCase, dout: Any = None) -> bool:
    """Run one method on one case of one layer set: True if it passes (failures may also raise)."""
    if method == "gradprop":
        gradprop_check(namespace, item, case)
        return True
    runner = Runner(resolve(namespace, item), item, case)
    if method in ("torch_slow", "torch_fast"):
        return torch_check(runner, fast_mode=method == "torch_fast")
    if method == "book":
        return book_check(runner, layers.numerical_gradient, runner.dout() if dout is None else dout)
    if method == "jax_check_grads":
        check_grads(*jax_wrapped_layer(runner), order=1, modes=["rev"])
        return True
    raise KeyError(method)


# --- timing ----------------------------------------------------------------------------------------


def median_ms(run: Callable[[int], Any]) -> float:
    """Median wall time of run(i) over repeats i = 0, 1, ... (each on its own fresh case)."""
    times: list[float] = []
    spent = 0.0
    while len(times) < MIN_REPEATS or (len(times) < MAX_REPEATS and spent < BUDGET_S):
        start = time.perf_counter()
        run(len(times))
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return 1000 * statistics.median(times)


def time_item(item: str) -> dict[str, Any]:
    namespace = counted(vars(layers), item)
    cases = [make_case(item, "main", seed) for seed in range(1 + MAX_REPEATS)]
    douts = [Runner(resolve(namespace, item), item, c).dout() for c in cases]
    row: dict[str, Any] = {"shapes": describe(cases[0])}

    start = time.perf_counter()
    gradprop_check(namespace, item, cases[0])  # the first check on these shapes: jit compiles
    row["gradprop_cold_ms"] = 1000 * (time.perf_counter() - start)

    # check_grads' functions made beforehand: a Dropout's mask is read off an (uncounted) forward
    references = [reference_function(vars(layers), item, c) for c in cases]
    calls = {}
    for method in METHODS:
        if method == "jax_check_grads":
            one = lambda i: check_grads(*references[i], order=1, modes=["rev"])  # noqa: E731
        else:
            one = lambda i, m=method: peer_check(m, namespace, item, cases[i], douts[i])  # noqa: E731
        one(0)  # warm-up on the same shapes: jit caches, torch's first-call setup
        calls[method] = count_calls(lambda: one(0))
        row[f"{method}_ms"] = median_ms(lambda i: one(1 + i))
    row["forward_calls"] = calls
    row["torch_slow_over_gradprop"] = row["torch_slow_ms"] / row["gradprop_ms"]
    row["torch_fast_over_gradprop"] = row["torch_fast_ms"] / row["gradprop_ms"]
    return row


# --- caught ----------------------------------------------------------------------------------------


def header(path: Path) -> tuple[str, str]:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    fields = dict(part.split("=", 1) for part in first.split(":", 1)[1].split())
    return fields["item"], fields["expect"]


def flags(method: str, path: Path, item: str) -> bool:
    """Does ``method`` flag the layer set at ``path`` on any of the three fixed inputs?"""
    try:
        namespace = load_layer_set(path)
    except BaseException:  # noqa: BLE001 - a file that cannot be imported: every method raises
        return True
    if resolve(namespace, item) is None:
        return True
    for variant in VARIANTS:
        case = make_case(item, variant, seed=100)
        dout = Runner(resolve(vars(layers), item), item, case).dout()  # from the correct layer's shape
        try:
            if not peer_check(method, namespace, item, case, dout):
                return True
        except BaseException:  # noqa: BLE001 - a failure report or any error: flagged
            return True
    return False


def suite_flags(path: Path, item: str) -> bool:
    """gradprop's whole suite (evaluate_item's properties, ci profile, no shrinking): does any core
    property fail? Stops at the first that does."""
    session = InProcessSession(path=str(path))
    entry = REGISTRY[item]
    if session.import_error or session.resolve(entry.names) is None:
        return True
    target = Target(session, entry, session.resolve(entry.names), path.stem)
    for prop in properties_for(entry):
        outcome = run_property(target, prop, CI)
        if not outcome.passed and prop.tier == CORE:
            return True
    return False


def judge_fixtures(kind: str) -> dict[str, dict[str, Any]]:
    verdicts = {}
    for path in sorted((ROOT / "fixtures" / kind).glob("*.py")):
        item, expect = header(path)
        if item not in ITEMS:
            continue  # softmax, cross_entropy_error: no backward to check
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            row = {"item": item, "expect": expect}
            row.update({m: flags(m, path, item) for m in METHODS})
            row["gradprop_suite"] = suite_flags(path, item)
        verdicts[path.stem] = row
        print(f"  {kind}/{path.name}: " + ", ".join(m for m in (*METHODS, "gradprop_suite") if row[m]),
              file=sys.stderr)
    return verdicts


# --- report ----------------------------------------------------------------------------------------

TITLES = {"gradprop": "gradprop", "torch_slow": "torch slow", "torch_fast": "torch fast",
          "jax_check_grads": "jax check_grads", "book": "book"}


def environment() -> dict[str, Any]:
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {"python": sys.version.split()[0], "numpy": np.__version__,
            "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "jax": jax.__version__,
            "cpus": os.cpu_count()}


def table(rows: dict[str, dict[str, Any]], caught: dict[str, int], caught_other: dict[str, int],
          alarms: dict[str, int], totals: tuple[int, int, int], env: dict[str, Any]) -> str:
    n_grad, n_other, n_correct = totals
    lines = [
        "Table: one check = one layer's backward verified on ONE input, all its gradients. "
        "Cells: median ms per check (forward calls per check). gradprop = check_backward + "
        "check_numerical through an InProcessSession, JAX reference warm (after a warm-up on the same "
        "shapes); its cold first call (new shapes, empty compile cache) is in its own column. torch = "
        "gradcheck on the numpy layer wrapped in an autograd.Function (float64). jax = check_grads(order=1, "
        "modes=['rev']) on the jitted JAX reference. book = numerical_gradient entry by entry (h=1e-4) "
        "vs backward. softmax and cross_entropy_error (no backward) are left out. 'caught': broken fixtures "
        "flagged (failure or exception) on the same 3 inputs per fixture; gradprop suite = evaluate_item's "
        "properties, ci profile; jax caught via the numpy layer wrapped in custom_vjp. "
        f"numpy {env['numpy']} ({env['blas']}), OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}, "
        f"torch {env['torch']} ({env['torch_threads']} threads), jax {env['jax']}, {env['cpus']} CPUs.",
        "",
        "| item | shapes | gradprop | gradprop cold | torch slow | torch fast | jax check_grads | book "
        "| slow / gradprop | fast / gradprop |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for item, r in rows.items():
        c = r["forward_calls"]
        cells = [f"{r[f'{m}_ms']:.2f} ({c[m]})" for m in METHODS]
        lines.append(f"| {item} | {r['shapes']} | {cells[0]} | {r['gradprop_cold_ms']:.0f} | "
                     + " | ".join(cells[1:])
                     + f" | {r['torch_slow_over_gradprop']:.0f}x | {r['torch_fast_over_gradprop']:.2f}x |")

    def counts(label: str, got: dict[str, int], out_of: int) -> str:
        suite = f"suite {got['gradprop_suite']}/{out_of}"
        return (f"| **{label}** | | {got['gradprop']}/{out_of} ({suite}) | | "
                + " | ".join(f"{got[m]}/{out_of}" for m in METHODS[1:]) + " | | |")

    lines.append(counts("caught: gradient fixtures (wrong-gradient, wrong-shape)", caught, n_grad))
    lines.append(counts("caught: other fixtures (forward, mutation, state, exceptions)", caught_other, n_other))
    lines.append(counts("false alarms: correct variants", alarms, n_correct))
    return "\n".join(lines)


def main() -> int:
    env = environment()
    jnp.ones(3).block_until_ready()  # start the JAX backend before anything is timed
    torch.manual_seed(0)  # gradcheck's fast mode draws its random vectors from torch's generator
    rows = {}
    for item in ITEMS:
        if tuple(g.name for g in REGISTRY[item].grads) != tuple(g[0] for g in GRADS[item]):
            raise SystemExit(f"benchmarks/cases.py: GRADS['{item}'] no longer matches the registry")
        rows[item] = time_item(item)
        print(f"  timed {item}", file=sys.stderr)

    broken, correct = judge_fixtures("broken"), judge_fixtures("correct")
    keys = (*METHODS, "gradprop_suite")
    grad = [v for v in broken.values() if v["expect"] in GRADIENT_TAGS]
    other = [v for v in broken.values() if v["expect"] not in GRADIENT_TAGS]
    caught = {m: sum(v[m] for v in grad) for m in keys}
    caught_other = {m: sum(v[m] for v in other) for m in keys}
    alarms = {m: sum(v[m] for v in correct.values()) for m in keys}

    print(table(rows, caught, caught_other, alarms, (len(grad), len(other), len(correct)), env))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps({**rows, "caught": caught}, indent=2) + "\n")
    detail = {"environment": env, "gradient_fixtures": len(grad), "other_fixtures": len(other),
              "correct_variants": len(correct), "caught_other": caught_other, "false_alarms": alarms,
              "broken": broken, "correct": correct}
    (RESULTS / "peers_fixtures.json").write_text(json.dumps(detail, indent=2) + "\n")
    shutil.rmtree(_CACHE, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
