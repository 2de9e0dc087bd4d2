"""Sphinx configuration (``sphinx-build -W -b html docs docs/_build``)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "tinystore"
author = "the tinystore developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
autodoc_member_order = "bysource"
autodoc_typehints = "none"
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
