"""The documentation's sources (``docs/``) agree with the code and the README.

Plain text checks that need neither Sphinx nor a build, so they run with the
rest of the tests; the build itself (``sphinx-build -W``, the ``docs`` extra)
checks everything else:

* every public name is in the API reference (``docs/api.rst``);
* every README block a page shows (``.. readme-snippet:: NAME``) exists, once;
* every number on the performance page is one the README states.
"""

import importlib
import importlib.util
import pkgutil
import re
import types
from pathlib import Path

import sklearn_em

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def public_modules():
    """sklearn_em and its submodules whose names do not start with '_'."""
    names = ["sklearn_em"] + [
        f"sklearn_em.{info.name}"
        for info in pkgutil.iter_modules(sklearn_em.__path__)
        if not info.name.startswith("_")
    ]
    return {name: importlib.import_module(name) for name in names}


def api_reference():
    """(modules given an ``automodule``, fully qualified names listed in an
    ``autosummary``) of docs/api.rst."""
    modules, names = set(), set()
    current, in_autosummary = None, False
    for line in (DOCS / "api.rst").read_text(encoding="utf-8").splitlines():
        directive = re.match(r"^\.\. ([\w:-]+)::\s*(\S*)", line)
        if directive:
            kind, argument = directive.groups()
            in_autosummary = kind == "autosummary"
            if kind == "automodule":
                modules.add(argument)
            elif kind in ("currentmodule", "module"):
                current = argument
        elif in_autosummary and line.strip() and not line.lstrip().startswith(":"):
            if not line.startswith(" "):
                in_autosummary = False
            else:
                names.add(f"{current}.{line.strip().lstrip('~')}")
    return modules, names


def resolve(qualified):
    module, _, name = qualified.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_api_reference_lists_every_public_name():
    documented_modules, documented_names = api_reference()
    documented = {id(resolve(name)) for name in documented_names}
    missing = []
    for module_name, module in public_modules().items():
        if module_name not in documented_modules:
            missing.append(f".. automodule:: {module_name}")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if name == "__version__" or isinstance(obj, types.ModuleType):
                continue
            if id(obj) not in documented:  # re-exports count once
                missing.append(f"{module_name}.{name}")
    assert not missing, f"not in docs/api.rst: {missing}"


def test_readme_snippets_exist():
    spec = importlib.util.spec_from_file_location(
        "readme_snippets", DOCS / "_ext" / "readme_snippets.py"
    )
    snippets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(snippets)
    blocks = snippets.readme_blocks(README)
    used = {
        (page.relative_to(DOCS).as_posix(), name)
        for page in DOCS.rglob("*.rst")
        if "_build" not in page.parts
        for name in snippets.DIRECTIVE.findall(page.read_text(encoding="utf-8"))
    }
    assert used, "no page shows a README block"
    bad = [(page, name) for page, name in sorted(used) if blocks.get(name) is None]
    assert not bad, f"README.md has no single ```python block named so: {bad}"


NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?:e[+-]?\d+)?")


def test_performance_figures_are_the_readmes():
    """The page copies the README's measurements; a figure the README does not
    state is an invented or stale one."""
    page = (DOCS / "user_guide" / "performance.rst").read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    stated = set(NUMBER.findall(readme))
    unknown = sorted(set(NUMBER.findall(page)) - stated)
    assert not unknown, f"numbers on the performance page not in README.md: {unknown}"
