"""Sphinx configuration of the sklearn-em documentation (the ``docs`` extra).

Full build, the gallery's examples executed, warnings as errors::

    sphinx-build -W --keep-going -b html docs docs/_build/html

Quick build, the examples shown but not executed::

    SKLEARN_EM_DOCS_RUN_EXAMPLES=0 \\
        sphinx-build -W --keep-going -b html docs docs/_build/html

Generated sources (not to be committed): ``docs/_build/``, ``docs/generated/``
(autosummary) and ``docs/auto_examples/`` (sphinx-gallery).
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # the checkout's sklearn_em, even if not installed

import sklearn_em  # noqa: E402

# -- Project -------------------------------------------------------------------
project = "sklearn-em"
author = "the sklearn-em developers"
copyright = "the sklearn-em developers, BSD-3-Clause"
version = release = sklearn_em.__version__

# -- Extensions ----------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "readme_snippets",  # docs/_ext: the README's tested code blocks, by name
]

templates_path = ["_templates"]
# three_gaussians.png in this folder is the README's figure and the front
# page's; docs/figures/ holds the example script's PNGs (written by it when run
# as a script), which the pages do not use.
exclude_patterns = ["_build", "figures", "**.ipynb_checkpoints"]

# Links into other projects' documentation need the network at build time,
# which CI may not have (a failed download is a warning, so an error under -W):
# opt in with SKLEARN_EM_DOCS_INTERSPHINX=1.
if os.environ.get("SKLEARN_EM_DOCS_INTERSPHINX", "0") not in ("", "0"):
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "dask": ("https://docs.dask.org/en/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
    }

# -- autodoc, autosummary, numpydoc --------------------------------------------
autosummary_generate = True  # the pages of docs/generated/, from api.rst
autodoc_typehints = "none"  # the numpydoc sections carry the types
# numpydoc puts a table of a class's methods at the top of its page; the class
# template (_templates/autosummary/class.rst) documents them further down, so
# the table links there and needs no page per method.
numpydoc_show_class_members = True
numpydoc_show_inherited_class_members = True
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# numpydoc's docstring validation (GL08, PR01, ... checks) is off, as by
# default: the build fails on what Sphinx and docutils report, not on style.
numpydoc_validation_checks = set()


# -- sphinx-gallery --------------------------------------------------------------
# Examples run by default; SKLEARN_EM_DOCS_RUN_EXAMPLES=0 builds the gallery
# pages without running them (code, no output or figures). (sphinx-gallery's
# own `-D plot_gallery=0` works too, but Sphinx then warns that the value is a
# string, which -W turns into an error.)
RUN_EXAMPLES = os.environ.get("SKLEARN_EM_DOCS_RUN_EXAMPLES", "1") not in ("", "0")


sphinx_gallery_conf = {
    # examples/ holds the scripts and the gallery's header (GALLERY_HEADER.rst).
    "examples_dirs": os.path.relpath(EXAMPLES, DOCS),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # scripts named plot_*.py are executed
    "ignore_pattern": r"/_",  # files starting with "_" are not examples
    "plot_gallery": RUN_EXAMPLES,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "download_all_examples": False,
    "remove_config_comments": True,
    # An example that raises fails the build (at its end, with the traceback).
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    # No sg_execution_times.rst page in the source folder.
    "write_computation_times": False,
}

# -- HTML ------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-em {release}"
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
