"""The docs stand alone: every file or anchor a document points to exists in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")  # markdown links [text](target)
# repository paths written in code spans, e.g. `drifting_policy/data/neighbours.py` or `configs/task/x.yaml`
CODE_PATH = re.compile(r"`((?:drifting_policy|envs|image_gen|configs|tests|benchmarks|docs)/"
                       r"[\w./-]+\.(?:py|yaml|md|sh|png|gif))`")
RESULTS_PAGE_MAX_LINES = 150


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_paths_resolve(doc):
    text = doc.read_text()
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            problems.append(f"link to missing {file_part}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            problems.append(f"link to missing anchor {target}")
    for written in CODE_PATH.findall(text):
        if "*" not in written and not (ROOT / written).exists():
            problems.append(f"names missing file {written}")
    assert not problems, f"{doc.relative_to(ROOT)}: " + "; ".join(problems)


def test_results_page_is_short():
    lines = (ROOT / "docs" / "results.md").read_text().splitlines()
    assert len(lines) <= RESULTS_PAGE_MAX_LINES, f"docs/results.md: {len(lines)} lines; move detail to a log"
