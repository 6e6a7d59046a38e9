"""``.. readme-snippet:: NAME``: show one of the README's Python blocks.

The README's ```python blocks are executed by ``tests/test_readme.py``; the
pages show those same blocks instead of copies that could drift. A block is
named by its first line, a comment (``# Sample weights`` is
``.. readme-snippet:: Sample weights``). A name that matches no block, or more
than one, is a build error.

Sphinx is imported only in :func:`setup`, so that ``tests/test_docs.py`` can use
:func:`readme_blocks` without it.
"""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(\S*)\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)
DIRECTIVE = re.compile(r"^\.\. readme-snippet::\s*(.+?)\s*$", flags=re.MULTILINE)


def readme_blocks(path=README):
    """{name: code} of the README's python blocks whose first line is a
    comment, named by that comment; a name that two blocks share maps to None."""
    blocks = {}
    for language, code in FENCE.findall(Path(path).read_text(encoding="utf-8")):
        first = code.lstrip().splitlines()[0] if code.strip() else ""
        if language != "python" or not first.startswith("#"):
            continue
        name = first.lstrip("#").strip()
        blocks[name] = None if name in blocks else code
    return blocks


def setup(app):
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class ReadmeSnippet(SphinxDirective):
        required_arguments = 1
        final_argument_whitespace = True
        has_content = False

        def run(self):
            name = self.arguments[0].strip()
            self.env.note_dependency(str(README))
            blocks = readme_blocks()
            if name not in blocks:
                raise self.error(
                    f"README.md has no ```python block starting with '# {name}' "
                    f"(it has: {', '.join(sorted(blocks))})"
                )
            if blocks[name] is None:
                raise self.error(f"README.md has several blocks named '# {name}'")
            code = blocks[name].rstrip("\n")
            literal = nodes.literal_block(code, code)
            literal["language"] = "python"
            self.set_source_info(literal)
            return [literal]

    app.add_directive("readme-snippet", ReadmeSnippet)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
