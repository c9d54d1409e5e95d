"""The README and docs/ point at things that exist: relative links (and their #anchors), repository paths
and module names written in backticks. Modules move; a page that still names the old place is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# Repository paths as the pages write them: a top-level folder of the project, then a file or folder name.
REPO_PATH = re.compile(r"^(?:engines|pages|rest|bench|tests|docs|examples|samples|\.ci)/[\w./-]*$")
TEST_FILE = re.compile(r"^test_\w+\.py$")  # "Where to look" names test files without their folder
MODULE = re.compile(r"^(?:engines|pages|rest|bench)(?:\.\w+)+$")  # dotted names, e.g. engines.core.audio.pcm16


def _prose(text: str) -> str:
    """The page without its fenced code blocks (examples, not references)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*$", _prose(page.read_text(encoding="utf-8")), re.MULTILINE)
    return {_slug(h) for h in headings}


def _links(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text(encoding="utf-8")))


def _spans(page: Path) -> list[str]:
    return [s.strip() for s in CODE_SPAN.findall(_prose(page.read_text(encoding="utf-8")))]


def test_pages_found() -> None:
    names = {p.name for p in PAGES}
    assert {"README.md", "DESIGN.md"} <= names and len(PAGES) > 5, names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_named_paths_exist(page: Path) -> None:
    missing = []
    for span in _spans(page):
        if REPO_PATH.match(span) and not (ROOT / span).exists():
            missing.append(span)
        elif TEST_FILE.match(span) and not (ROOT / "tests" / span).exists():
            missing.append(span)
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"


def _module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _defines(source: str, name: str) -> bool:
    """Whether a module defines or imports ``name`` (a def, class, assignment, field or import)."""
    return bool(
        re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b", source, re.MULTILINE)
        or re.search(rf"^\s*{name}\s*[:=]", source, re.MULTILINE)
        or re.search(rf"\bimport\b[^\n]*\b{name}\b", source)
        or re.search(rf"^\s+{name},?$", source, re.MULTILINE)  # inside a parenthesised import
    )


def _module_name_ok(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = _module_file(parts[:cut])
        if module is None:
            continue
        rest = parts[cut:]
        if not rest:
            return True
        source = module.read_text(encoding="utf-8")
        # module.name or module.Class.member: the first must be defined there, the second anywhere in it
        return len(rest) <= 2 and _defines(source, rest[0]) and (len(rest) == 1 or rest[1] in source)
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_named_modules_exist(page: Path) -> None:
    names = {m.group(0) for span in _spans(page) for m in re.finditer(r"[\w.]+", span) if MODULE.match(m.group(0))}
    wrong = sorted(n for n in names if not _module_name_ok(n))
    assert not wrong, f"{page.relative_to(ROOT)} names modules or attributes that do not exist: {wrong}"
