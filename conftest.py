"""pytest set-up of gradprop's own suite. The options (``--submission``), the ``suite`` fixture,
profiles and x64 JAX live in the installed plugin, ``gradprop/plugin.py``, so that they work from
any folder; here, the repository's runs use its profiles too."""
from gradprop.plugin import use_profiles

# derandomized on CI, quick and random on a laptop; --hypothesis-profile NAME overrides either
use_profiles()
