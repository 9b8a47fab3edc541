import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)


def test_ci_runs_the_readme_test_command_word_for_word():
    test_command = next(c for c in readme_commands() if c.endswith("pytest"))
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    (example,) = [block for block in re.findall(r"```python\n(.*?)\n```", text, flags=re.S) if "Trainer" in block]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert len(namespace["rows"]) == 5
    assert [tuple(a.shape) for a in namespace["actions"]] == [(4, 2), (4, 1)]
    assert (tmp_path / "runs" / "api-demo" / "metrics.csv").is_file()


def test_readme_fisher_examples_run():
    """The HATRPO section's two examples: the double-backward call and `Actor.fisher`."""
    text = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)\n```", text, flags=re.S) if "conjugate_gradient(" in b or ".fisher(" in b]
    assert len(blocks) == 2
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
        assert namespace["result"].iterations >= 1 and namespace["fv"].shape == namespace["g"].shape
