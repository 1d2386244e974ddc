"""The README and docs stay true: short README, links that resolve, a complete layout, commands that exist."""

from __future__ import annotations

import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```(?:bash|sh)\n(.*?)```", re.S)


def documents() -> list[Path]:
    return [README, ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]


def github_anchor(heading: str) -> str:
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    body = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", body, re.M)}


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 250


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(doc: Path):
    broken = []
    body = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    for target in LINK.findall(body):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (doc.parent / path_part).resolve() if path_part else doc
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors_of(resolved):
            broken.append(target)
    assert broken == [], f"{doc.name}: broken links {broken}"


def test_layout_names_every_package_folder():
    layout = README.read_text().split("## Layout", 1)[1]
    folders = sorted(
        p.name for p in (ROOT / "mmpretrain").iterdir()
        if p.is_dir() and not p.name.startswith(("_", "."))
    )
    missing = [name for name in folders if f"{name}/" not in layout]
    assert missing == []


def readme_commands() -> list[list[str]]:
    """First line of every command in the README's shell blocks (continuations dropped)."""
    commands, continued = [], False
    for block in FENCE.findall(README.read_text()):
        for line in block.splitlines():
            stripped = line.split("  #", 1)[0].strip()
            if not stripped or stripped.startswith("#"):
                continued = False
                continue
            if not continued:
                commands.append(shlex.split(stripped.rstrip("\\")))
            continued = stripped.endswith("\\")
    return commands


def test_readme_commands_are_activated_or_make():
    text = README.read_text()
    assert "source .venv/bin/activate" in text
    for words in readme_commands():
        assert words[0] in {"make", "source", "mmpretrain", "python"}, words
        assert not words[0].startswith(".venv/"), "the README activates the venv once instead"


def test_readme_configs_exist():
    missing = []
    for words in readme_commands():
        for flag, value in zip(words, words[1:]):
            if flag == "-c" and not (ROOT / value).exists():
                missing.append(value)
    assert missing == []


def test_readme_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for words in readme_commands():
        if words[0] == "make":
            assert re.search(rf"^{re.escape(words[1])}:", makefile, re.M), words


def test_readme_commands_answer_help(capsys, monkeypatch):
    from mmpretrain.cli import main

    seen = set()
    for words in readme_commands():
        if words[0] == "mmpretrain":
            key = tuple(w for w in words[1:2] if not w.startswith("-"))
            if key in seen:
                continue
            seen.add(key)
            with pytest.raises(SystemExit) as exit_info:
                main([*key, "--help"])
        elif words[0] == "python":
            script = ROOT / words[1]
            if script in seen:
                continue
            seen.add(script)
            monkeypatch.setattr(sys, "argv", [str(script), "--help"])
            with pytest.raises(SystemExit) as exit_info:
                runpy.run_path(str(script), run_name="__main__")
        else:
            continue
        assert exit_info.value.code in (0, None), words
        assert "usage" in capsys.readouterr().out.lower(), words
    assert len(seen) >= 6
