"""The guides in docs/ teach with code that runs: every ```python block of docs/*.md is executed
here, the blocks of one guide in order in one fresh namespace, in a folder of its own with a store
of its own (TASKMILL_URL names a new SQLite file there), so a guide whose examples stop working
fails the suite instead of misleading its reader.

Three kinds of python blocks:
- ```python: executed. The guide's folder is the working directory and is on sys.path, as for a
  script run there.
- ```python file=NAME.py: a file the guide shows (an app module, a conftest.py, a test module);
  it is written to NAME.py in the guide's folder when reached, not executed. If a guide shows
  test_*.py files, pytest runs them there at the end, and they must pass.
- ```python no-run: a fragment that cannot run here (a server that blocks forever); it is still
  compiled, so it stays valid Python. Keep these rare.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from taskmill import Mill, Worker

DOCS = Path(__file__).resolve().parent.parent / "docs"

# The guides written to be learnt from; each must exist and hold code that runs.
GUIDES = (
    "tasks-and-jobs.md",
    "retries.md",
    "scheduling.md",
    "progress-and-cancellation.md",
    "resumable-tasks.md",
    "workers.md",
    "backends.md",
    "testing.md",
    "coming-from.md",
)

OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    """One ```python block: where its code starts in the guide, its code, and what to do with it."""

    path: Path
    line: int
    code: str
    runs: bool
    file: str | None = None

    def compiled(self) -> Any:
        # Padding keeps line numbers: a traceback points at the guide's own line.
        return compile("\n" * (self.line - 1) + self.code, str(self.path), "exec")


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, in order (``` or ~~~ fences, indented or not)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    index = 0
    while index < len(lines):
        opening = OPENING.match(lines[index])
        index += 1
        if opening is None:
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        words = opening["info"].split()
        start, body = index, []
        while index < len(lines):
            stripped = lines[index].strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                break
            line = lines[index]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            index += 1
        index += 1
        if words and words[0] == "python":
            files = [w.removeprefix("file=") for w in words[1:] if w.startswith("file=")]
            out.append(Block(path, start + 1, "\n".join(body) + "\n", "no-run" not in words[1:],
                             files[0] if files else None))
    return out


def anchors(path: Path) -> set[str]:
    """The #fragments of a Markdown file's headings, slugged as GitHub does."""
    out, fence = set(), ""
    for line in path.read_text(encoding="utf-8").splitlines():
        opening = OPENING.match(line)
        if opening is not None and (not fence or opening["fence"].startswith(fence)):
            fence = "" if fence else opening["fence"]
        elif not fence and (heading := re.match(r"^#{1,6}\s+(.*)$", line)):
            text = re.sub(r"[^\w\- ]", "", heading[1].strip().lower())
            out.add(text.replace(" ", "-"))
    return out


def guides_with_code() -> list[Path]:
    """The guides in docs/ and the README, each with python blocks."""
    return sorted(p for p in [*DOCS.glob("*.md"), DOCS.parent / "README.md"] if python_blocks(p))


def release(made: list[Any]) -> None:
    """Stop the workers a guide left running and close the mills it made, rebound names too."""
    for thing in made:
        if isinstance(thing, Worker):
            thing.stop(grace=0)
    for thing in made:
        if isinstance(thing, Mill):
            thing.close()


@pytest.fixture
def fresh_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working folder of its own, on sys.path, and a store of its own: `Mill()` opens a new
    SQLite file there. Every Mill and Worker made meanwhile is closed or stopped afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKMILL_URL", f"sqlite:///{tmp_path}/taskmill.db")
    monkeypatch.delenv("TASKMILL_APP", raising=False)
    monkeypatch.delenv("TASKMILL_TOKEN", raising=False)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    made: list[Any] = []
    for cls in (Mill, Worker):
        monkeypatch.setattr(cls, "__init__", recording(cls.__init__, made))
    yield tmp_path
    release(made)
    for name, module in list(sys.modules.items()):  # the modules a guide wrote and imported
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def recording(init: Any, made: list[Any]) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    return __init__


def run_shown_tests(folder: Path, files: list[str]) -> None:
    """Run the test files a guide shows with pytest, in the guide's folder, as its reader would."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
                          cwd=folder, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
                               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})  # plain pytest starts fast
    assert done.returncode == 0, f"pytest on {files} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("guide", guides_with_code(), ids=lambda p: p.name)
def test_the_code_in_each_guide_runs(guide: Path, fresh_place: Path) -> None:
    # Given a guide's python blocks, a fresh folder and a fresh store
    namespace: dict[str, Any] = {"__name__": f"docs_{guide.stem.replace('-', '_')}"}
    shown_tests = []
    # When its blocks run in order in one namespace (and the files it shows are written)
    for block in python_blocks(guide):
        if block.file is not None:
            target = fresh_place / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
            if target.name.startswith("test_"):
                shown_tests.append(block.file)
        elif block.runs:
            exec(block.compiled(), namespace)
    # Then none raised (their asserts included), and the tests it shows pass
    if shown_tests:
        run_shown_tests(fresh_place, shown_tests)


@pytest.mark.parametrize("guide", guides_with_code(), ids=lambda p: p.name)
def test_the_blocks_not_executed_are_still_valid_python(guide: Path) -> None:
    for block in python_blocks(guide):
        if not block.runs or block.file is not None:
            block.compiled()


@pytest.mark.parametrize("name", GUIDES)
def test_each_guide_exists_and_teaches_with_code_that_runs(name: str) -> None:
    path = DOCS / name
    assert path.is_file(), f"docs/{name} is missing"
    blocks = python_blocks(path)
    assert any(b.runs and b.file is None for b in blocks), f"docs/{name} has no block that runs"
    fragments = [b for b in blocks if not b.runs]
    assert len(fragments) <= len(blocks) // 4, f"docs/{name}: too many blocks are marked no-run"


def test_the_index_links_every_guide() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = {m["target"].split("#")[0] for m in LINK.finditer(index)}
    assert set(GUIDES) <= linked, f"not linked from docs/index.md: {set(GUIDES) - linked}"


@pytest.mark.parametrize("name", ["index.md", *GUIDES])
def test_links_from_the_guides_to_files_of_the_repository_resolve(name: str) -> None:
    path = DOCS / name
    broken = []
    for match in LINK.finditer(path.read_text(encoding="utf-8")):
        target, _, fragment = match["target"].partition("#")
        if "://" in target or target.startswith("mailto:"):
            continue
        linked = path.parent / target if target else path
        if not linked.exists():
            broken.append(target)
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(match["target"])
    assert not broken, f"docs/{name} links to files that do not exist: {broken}"


def test_the_block_reader_finds_fences_languages_and_marks(tmp_path: Path) -> None:
    # Given a Markdown file with a run block, an indented no-run block, a file block and others
    guide = tmp_path / "g.md"
    guide.write_text("text\n```python\na = 1\n```\n```bash\nls\n```\n"
                     "- item\n\n  ```python no-run\n  b = 2\n  ```\n~~~python\nc = 3\n~~~\n"
                     "```python file=app/tasks.py\nd = 4\n```\n", encoding="utf-8")
    # When it is read
    blocks = python_blocks(guide)
    # Then only python blocks come back, with their first code line, dedented, with their marks
    assert [(b.line, b.code, b.runs, b.file) for b in blocks] == [
        (3, "a = 1\n", True, None), (11, "b = 2\n", False, None), (14, "c = 3\n", True, None),
        (17, "d = 4\n", True, "app/tasks.py")]
