"""The documentation holds together: README.md stays one page (at most 10,000 characters), every relative link in
README.md and docs/*.md reaches an existing file and, with a #anchor, a heading of that page, and `make help` names
every target of the Makefile. Fast: reads files and runs `make -s help`, imports nothing of samesame."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_LIMIT = 10_000
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[(?P<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(?P<target><[^>]*>|[^)\s]*)(?:\s+[\"'(][^)]*)?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(?P<title>.*?)(?:[ \t]+#+)?[ \t]*$", re.M)
EXTERNAL = ("http://", "https://", "mailto:")


def prose(markdown: str) -> str:
    """The text outside fenced code blocks (a `# comment` or a `[x](y)` in a fence is no heading and no link)."""
    return FENCE.sub("", markdown)


def slug(title: str) -> str:
    """GitHub's anchor of a heading: its text without links' targets and markup, lowercased, punctuation dropped
    except '-' and '_', each space a '-'."""
    title = LINK.sub(lambda m: m.group("text"), title)
    title = re.sub(r"<[^>]+>", "", title)                 # inline HTML
    title = title.lower()
    title = re.sub(r"[^\w\- ]", "", title)                # keeps letters, digits, '_', '-', spaces
    return title.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page, with GitHub's -1, -2 ... suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(prose(page.read_text(encoding="utf-8"))):
        base = slug(match.group("title"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """The targets of every Markdown link and image in a page's prose, in order."""
    text = CODE_SPAN.sub("", prose(page.read_text(encoding="utf-8")))
    return [m.group("target").strip("<>") for m in LINK.finditer(text)]


def broken_links(page: Path) -> list[str]:
    """Each relative link of ``page`` that reaches no file, or whose #anchor is no heading of its page."""
    broken = []
    for target in links(page):
        if target.lower().startswith(EXTERNAL):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{page.name}: ({target}) -> {dest} does not exist")
        elif anchor and dest.suffix.lower() == ".md" and unquote(anchor).lower() not in anchors(dest):
            broken.append(f"{page.name}: ({target}) -> no heading '#{anchor}' in {dest.name}")
    return broken


def test_readme_is_one_page():
    size = len(README.read_text(encoding="utf-8"))          # characters, as `wc -m` counts them
    assert size <= README_LIMIT, (f"README.md holds {size:,} characters (limit {README_LIMIT:,}): move sections "
                                  "into docs/ and link them")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = broken_links(page)
    assert not broken, "\n".join(broken)


def test_the_link_check_finds_a_broken_link_and_a_wrong_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The sample's `make all`, cold — measured\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n## Two words\n\n"
                    "[ok](other.md) [ok](other.md#the-samples-make-all-cold--measured) [ok](#two-words)\n"
                    "![ok](other.md) [web](https://example.com/x) `[in code](nowhere.md)`\n"
                    "```\n[in a fence](nowhere.md)\n```\n"
                    "[missing](nowhere.md) [bad anchor](other.md#no-such-heading) ![gone](figures/none.png)"
                    " [bad here](#three-words)\n")
    broken = broken_links(page)
    assert len(broken) == 4, broken
    assert [b.split("(")[1].split(")")[0] for b in broken] == [
        "nowhere.md", "other.md#no-such-heading", "figures/none.png", "#three-words"]


def phony_targets(makefile: Path) -> list[str]:
    """The names on the Makefile's .PHONY lines (make variables such as $(CHECKS), internal steps, left out)."""
    names = []
    for line in makefile.read_text(encoding="utf-8").splitlines():
        if line.startswith(".PHONY:"):
            names += [w for w in line.split(":", 1)[1].split() if "$" not in w]
    return names


def help_targets(help_text: str) -> set[str]:
    """The targets `make help` names: the word after each `make`, with `a|b|c` lists split."""
    return {name for words in re.findall(r"\bmake\s+([A-Za-z0-9_.|-]+)", help_text) for name in words.split("|")
            if name}


def test_make_help_names_every_target():
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    named = help_targets(out.stdout)
    targets = phony_targets(REPO / "Makefile")
    assert "all" in targets and "help" in targets
    missing = [t for t in targets if t != "help" and t not in named]     # `help` need not list itself
    assert missing == [], f"make help does not name: {', '.join(missing)}"
