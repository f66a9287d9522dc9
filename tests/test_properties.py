"""The properties over the registry, against gradprop's own ``layers/``.

They live in the installed package (``gradprop/properties/tests.py``, in the repository
``properties/tests.py``) so that ``pytest --submission PATH`` finds them from any folder;
importing them here makes them part of the repository's suite, with the same ids as before.
"""
from gradprop.properties.tests import (  # noqa: F401 - collected by pytest from this module
    test_aliases_output,
    test_backward,
    test_every_property_has_a_test,
    test_forward,
    test_ignores_dout,
    test_in_place,
    test_mutates_dout,
    test_mutates_input,
    test_numerical,
    test_regime,
    test_shapes,
    test_stale_state,
    test_update,
)
