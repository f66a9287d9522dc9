"""Stand-ins for modules a submission imports but may not use where it is graded (sandbox child).

Two kinds, each a module that imports fine and fails, naming itself, when a checked call uses it:

- **display-only** modules (``DISPLAY_ONLY``: matplotlib, PIL, tqdm, IPython, google.colab...)
  where they are not installed: a plot or a progress bar is not what is graded, and a missing
  plotting library must not cost the layers beside it. While the submission loads, a use does
  nothing (``plt.figure()`` at a file's top level); in a checked call it raises
  ``ModuleNotFoundError``, reported as ``import-error``;
- **forbidden** modules (the rubric's ``forbid``, by default the autodiff libraries
  ``AUTODIFF``): installed or not, the import gives a stand-in that does nothing while the file
  loads (``jax.config.update(...)`` at its top), and raises ``Forbidden`` in a checked call,
  reported as ``forbidden-import``. The sandbox hides their files from the child too
  (``isolation.hidden_paths``), so removing this hook does not reach them.

Standard library only (and ``i18n``, for its messages): it runs in the child before the submission.
"""
from __future__ import annotations

import importlib.machinery
import sys
import types
from typing import Any, Iterable

from .i18n import _

#: autodiff libraries: a hand-written backward pass is what is graded (the rubric's ``forbid``
#: replaces this list; ``forbid = []`` allows them)
AUTODIFF = ("jax", "jaxlib", "torch", "tensorflow", "keras", "autograd", "mygrad", "tinygrad", "chainer",
            "mxnet", "flax", "paddle")
#: modules that only show things or only make sense in a notebook: where they are missing, a stand-in
DISPLAY_ONLY = ("matplotlib", "mpl_toolkits", "PIL", "tqdm", "IPython", "ipywidgets", "google", "seaborn",
                "plotly", "cv2", "pandas", "sklearn", "torchvision", "tensorboard", "wandb")


class Forbidden(ImportError):
    """A use of a module the rubric forbids."""


#: True while the submission loads: a display-only stand-in then does nothing when used
LOADING = [False]
#: the forbidden modules the submission imported, in order (for the report)
IMPORTED_FORBIDDEN: list[str] = []
#: the display-only modules that were missing and stood in for, in order
STOOD_IN: list[str] = []


def _fail(name: str, forbidden: bool) -> BaseException:
    if forbidden:
        return Forbidden(_("{name} is not allowed in this assignment (the rubric forbids {module}): write the forward "
                           "and backward passes with numpy").format(name=name, module=name.split(".")[0]))
    return ModuleNotFoundError(_("{name} is not installed where gradprop grades (it only shows things, so it is "
                                 "stood in for while your file loads); a checked call used it").format(name=name),
                               name=name)


class _Use:
    """What an attribute of a stand-in module gives: nothing while loading, a clear error after."""

    __slots__ = ("_name", "_forbidden")

    def __init__(self, name: str, forbidden: bool):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_forbidden", forbidden)

    def _use(self, what: str) -> "_Use":
        if LOADING[0]:  # a plot, a config line at the top of a file: nothing, and no fault
            return _Use(f"{self._name}{what}", self._forbidden)
        raise _fail(self._name, self._forbidden)

    def __getattr__(self, attr: str) -> "_Use":
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return self._use(f".{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> "_Use":
        return self._use("()")

    def __setattr__(self, attr: str, value: Any) -> None:
        self._use(f".{attr}")

    def __iter__(self):
        self._use("")
        return iter(())

    def __repr__(self) -> str:
        return f"<stand-in for {self._name}>"


class _Module(types.ModuleType):
    def __init__(self, name: str, forbidden: bool):
        super().__init__(name)
        self.__path__: list[str] = []  # a package: its submodules are stood in for too
        self.__gradprop_forbidden__ = forbidden

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Use(f"{self.__name__}.{attr}", self.__gradprop_forbidden__)


class _Finder:
    """Gives a stand-in for the modules it stands for (see the module docstring)."""

    def __init__(self, tops: Iterable[str], forbidden: bool):
        self.tops, self.forbidden = frozenset(tops), forbidden

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.split(".")[0] not in self.tops:
            return None
        seen = IMPORTED_FORBIDDEN if self.forbidden else STOOD_IN
        if fullname.split(".")[0] not in seen:
            seen.append(fullname.split(".")[0])
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: Any) -> types.ModuleType:
        return _Module(spec.name, self.forbidden)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install(forbid: Iterable[str]) -> None:
    """Forbidden modules before every other finder; display-only ones after them all (only
    when the real module is not found). Forbidden modules already imported are dropped."""
    forbid = [f for f in forbid if f != "numpy"]
    for name in list(sys.modules):
        if name.split(".")[0] in forbid:
            del sys.modules[name]
    sys.meta_path.insert(0, _Finder(forbid, True))
    sys.meta_path.append(_Finder(DISPLAY_ONLY, False))


def is_forbidden(exc: BaseException) -> bool:
    return isinstance(exc, Forbidden)
