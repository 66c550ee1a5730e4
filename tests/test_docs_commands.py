"""The test command is written in four places for four readers (the README, the install and
development pages of docs/, and .ci/run, which runs it): they are one command, character for
character, and it builds the docs site with --strict."""

from __future__ import annotations

from paths import REPO

PLACES = ("README.md", "docs/guide/install.md", "docs/development.md", ".ci/run")


def commands_in(path: str) -> set[str]:
    text = (REPO / path).read_text()
    return {line for line in text.splitlines() if line.startswith("python3 -m venv .venv")}


def test_the_test_command_is_one_command_everywhere():
    commands = {path: {c for c in commands_in(path) if '".[test]"' in c} for path in PLACES}
    assert all(len(found) == 1 for found in commands.values()), commands
    assert len(set.union(*commands.values())) == 1, commands
    (command,) = commands["README.md"]
    assert "mkdocs build --strict" in command and command.endswith("pytest -n 2")


def test_the_readme_and_the_install_page_give_the_same_two_commands():
    assert commands_in("README.md") == commands_in("docs/guide/install.md")
    assert len(commands_in("README.md")) == 2
