"""The documentation holds together: every relative link and repository path in README.md and docs/ resolves
(anchors included), and README's quickstarts run, the core one on random tensors and the ultralytics one on a
tiny dataset written here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# A code span is checked as a repository path when it starts with one of these (runs/ is generated, not kept).
REPO_DIRS = ("kdloss/", "adapters/", "docs/", "benchmarks/", "tests/", "examples/", "assets/", ".ci/")
REPO_FILES = {"README.md", "Makefile", "pyproject.toml", "constraints.txt"}


def prose(text: str) -> str:
    """The page without its fenced code blocks (commands there name generated paths such as runs/...)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(page.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # http(s)://, mailto: ...


def repo_paths(page: Path) -> list[str]:
    spans = (span.strip() for span in CODE_SPAN.findall(prose(page.read_text())))
    return [span for span in spans if " " not in span and "..." not in span
            and (span.startswith(REPO_DIRS) or span in REPO_FILES)]


def test_pages_found():
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"README.md", "docs/usage.md", "docs/losses.md", "docs/performance.md", "docs/results.md",
            "docs/CHANGELOG.md", "docs/evidence/PROVENANCE.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        if path.startswith("runs/"):  # written by the commands, not kept in the repository
            continue
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no heading with anchor #{anchor} in {file.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_repository_paths_exist(page):
    missing = [path for path in repo_paths(page)
               if not (list(ROOT.glob(path.rstrip("/"))) if "*" in path else (ROOT / path).exists())]
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def python_block(containing: str) -> str:
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)
    (block,) = [b for b in blocks if containing in b]
    return block


def test_readme_core_quickstart_runs(capsys):
    code = python_block("from kdloss import")
    assert "ultralytics" not in code  # torch only
    exec(compile(code, "README.md (core quickstart)", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert out.startswith("total ") and "bckd_cls" in out and "cwd" in out


@pytest.mark.slow
def test_readme_ultralytics_quickstart_trains(tmp_path, monkeypatch):
    pytest.importorskip("ultralytics")
    from kdloss.adapters.ultralytics.data import make_shapes_dataset

    data = make_shapes_dataset(tmp_path / "shapes", train=8, val=4, imgsz=64)
    teacher = ROOT / "assets" / "shapes-yolov8s-teacher.pt"  # trained on the same classes
    project = tmp_path / "runs"
    code = python_block("from kdloss.adapters.ultralytics import distill")
    tiny = (f'epochs=1, imgsz=64, batch=4, workers=0, device="cpu", amp=False, plots=False, seed=0, '
            f'project={str(project)!r}, exist_ok=True, verbose=False')
    for old, new in [('"teacher.pt"', repr(str(teacher))), ('"data.yaml"', repr(str(data))),
                     ("epochs=100, imgsz=640", tiny)]:
        assert code.count(old) == 2, (old, code)  # once in distill(), once in YOLO(...).train(...)
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (ultralytics quickstart)", "exec"), {"__name__": "readme"})
    header = (project / "train" / "results.csv").read_text().splitlines()[0]
    assert "kdcls_loss" in header and "kdbox_loss" in header  # the default recipe, BCKD, ran
    assert (project / "train" / "weights" / "last.pt").exists()
