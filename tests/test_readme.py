"""The README's code examples run and say what they claim."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    text = README.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_usage_example_runs_and_picks_three_components():
    runnable = [
        block for block in python_blocks() if "import" in block and "X, y =" in block
    ]
    assert runnable, "the README lost its self-contained usage example"
    namespace: dict = {}
    exec(compile(runnable[0], str(README), "exec"), namespace)
    assert namespace["search"].best_params_["n_components"] == 3
    assert len(namespace["labels"]) == 1500


def test_readme_commands_match_ci():
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e ".[test]" && python -m pytest' in text
    assert "python -m pytest" in ci
