"""Findings: what a failed check reports, with the stable tags of CONTRACT.md section 3."""
from __future__ import annotations

CORE = "core"
STRICT = "strict"

#: tag -> (tier, meaning). The order is the order findings are listed in reports.
TAGS: dict[str, tuple[str, str]] = {
    "not-found": (CORE, "the item's name is not defined"),
    "import-error": (CORE, "the submission cannot be imported"),
    "exception": (CORE, "the item raised"),
    "forbidden-import": (CORE, "the item uses a module the rubric forbids (an autodiff library: jax, torch...)"),
    "timeout": (CORE, "the item did not return within its time limit"),
    "wrong-forward": (CORE, "forward disagrees with the reference"),
    "wrong-gradient": (CORE, "backward disagrees with the reference / numerical gradient"),
    "wrong-shape": (CORE, "a gradient's shape differs from what it differentiates"),
    "non-finite": (CORE, "NaN or inf where the true value is finite"),
    "mutates-input": (CORE, "forward (or a function item) modified an input array"),
    "stale-state": (CORE, "backward used state from an earlier forward"),
    "wrong-update": (CORE, "an optimizer's update moves params differently from the reference"),
    "not-in-place": (CORE, "an optimizer's update rebinds params entries instead of changing their arrays"),
    "mutates-dout": (STRICT, "backward wrote into dout"),
    "aliases-output": (STRICT, "backward returned dout itself, or the same array twice"),
    "ignores-dout": (STRICT, "a loss layer's backward does not scale with dout"),
}


#: findings about running the code at all, not about its values: a fault costs its whole item, is
#: never shrunk (a crash restarts the submission's process on every try), and is reported on the
#: first input that showed it
FAULTS = frozenset({"import-error", "not-found", "exception", "timeout", "forbidden-import"})


def tier(tag: str) -> str:
    return TAGS[tag][0]


class Finding(AssertionError):
    """A failed check. Raised inside a property so that Hypothesis shrinks the input.

    ``tag`` is one of TAGS; ``message`` is the explanation a student reads.
    """

    def __init__(self, tag: str, message: str, candidates: frozenset[str] | None = None,
                 hint: tuple[str, str] | None = None):
        if tag not in TAGS:
            raise ValueError(f"unknown finding tag {tag!r}")
        super().__init__(f"[{tag}] {message}")
        self.tag = tag
        self.message = message
        #: for a wrong value: the classic slips consistent with it (``diagnosis.candidates``)
        self.candidates = candidates
        #: the hint the message gives, (id, line), as the grader made it (``diagnosis.find_hint``)
        self.hint = hint

    @property
    def tier(self) -> str:
        return tier(self.tag)

    def __reduce__(self):  # keep every field when pickled across processes
        return (type(self), (self.tag, self.message, self.candidates, self.hint))


class SubmissionFault(Finding):
    """The submission itself failed to run: it raised, hung, crashed or could not be imported.

    Unlike a wrong value, a fault is not a property of the input alone, so the whole item stops
    at the first one (a hang is not retried for every example Hypothesis would try).
    """
