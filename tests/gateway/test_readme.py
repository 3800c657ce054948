"""The README's promises stay true: the two commands, and the configuration reference."""

from pathlib import Path

from config.reference import markdown_reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```", 2)[1]
    assert "make run" in first_block and "make test" in first_block


def test_readme_says_where_first_start_passwords_go() -> None:
    from gateway.firststart import CREDENTIALS_FILE

    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "only when standard output is a terminal" in text
    assert f"`var/{CREDENTIALS_FILE}` (mode 0600)" in text


def test_readme_configuration_reference_matches_the_settings() -> None:
    assert markdown_reference().strip() in README.read_text(encoding="utf-8")


def test_ci_runs_exactly_make_test() -> None:
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    skip = ("#", "set ", "cd ")
    commands = [ln for ln in ci.splitlines() if ln.strip() and not ln.startswith(skip)]
    assert commands == ["make test"]
