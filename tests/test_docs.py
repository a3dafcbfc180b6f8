"""The documentation holds together: a short front page with the commands up front, links that resolve, a licence.

Links are checked as GitHub renders them: a relative link must name a file or directory of the repository, and a
`#anchor` a heading of the target Markdown file, slugged by GitHub's rules (lower case; letters, digits, `_`, `-`
and spaces kept, spaces made `-`, every other character dropped; a repeated heading gets `-1`, `-2`, …).
"""

from __future__ import annotations

import re
import subprocess
import tomllib
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUN_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && python -m cllab check && dvc repro"
)
TEST_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && python -m pytest -ra"
)
FRONT_PAGE_LINES = 200
COMMANDS_WITHIN = 40

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _markdown_files() -> list[Path]:
    """Every *.md file git tracks or would track (without git: every *.md outside hidden and generated directories)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.md"], cwd=ROOT, capture_output=True, check=True, text=True
        ).stdout
        files = [ROOT / name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", "data", "dvc_plots", "node_modules"}
        files = [p for p in ROOT.rglob("*.md")
                 if not any(part.startswith(".") or part in skip for part in p.relative_to(ROOT).parts[:-1])]
    return sorted(p for p in files if p.is_file())


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks (a fenced block's lines become empty, so line numbers stay)."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if _FENCE.match(line.strip()):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading's text (before de-duplication)."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", heading)  # a link or image: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = "".join(c for c in text if c in " -" or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings, with GitHub's -1, -2 … for repeated ones."""
    seen: dict[str, int] = {}
    found = set()
    for line in _prose(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}-{seen[slug]}"
        else:
            seen[slug] = 0
        found.add(slug)
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link or #anchor of a Markdown file that names no file, directory or heading, as `line: target`."""
    broken = []
    prose = "\n".join(_prose(path.read_text(encoding="utf-8")))
    prose = _INLINE_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)  # code spans hold no links
    for match in _LINK.finditer(prose):
        target = match.group(1)
        line = prose.count("\n", 0, match.start()) + 1
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # http(s), mailto, …: not checked offline
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if file_part.startswith("/") or not resolved.exists():
            broken.append(f"{line}: {target} (no such file)")
            continue
        try:
            resolved.relative_to(root.resolve())
        except ValueError:
            broken.append(f"{line}: {target} (outside the repository)")
            continue
        if anchor and resolved.suffix.lower() == ".md" and unquote(anchor).lower() not in anchors(resolved):
            broken.append(f"{line}: {target} (no heading #{anchor} in {resolved.relative_to(root.resolve())})")
    return broken


def test_readme_is_a_front_page_of_at_most_200_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= FRONT_PAGE_LINES, (
        f"README.md has {len(lines)} lines, the front page allows {FRONT_PAGE_LINES}: move detail into docs/ and link it"
    )


@pytest.mark.parametrize("command", [RUN_COMMAND, TEST_COMMAND], ids=["run", "test"])
def test_readme_gives_the_run_and_test_commands_in_its_first_40_lines(command):
    first = README.read_text(encoding="utf-8").splitlines()[:COMMANDS_WITHIN]
    assert command in (line.strip() for line in first), (
        f"README.md: the command `{command}` must be a line of its own within the first {COMMANDS_WITHIN} lines"
    )


def test_ci_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install, _, test = TEST_COMMAND.rpartition(" && ")
    assert install.replace("pip install -e", "pip install -q -e") in ci and f"\n{test}\n" in ci


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(path):
    assert broken_links(path) == [], f"{path.relative_to(ROOT)}: broken links"


def test_the_markdown_checked_includes_the_front_page_and_the_manual():
    checked = {p.relative_to(ROOT).as_posix() for p in _markdown_files()}
    assert {"README.md", "docs/README.md", "bench/README.md", "sequence/README.md", "scenarios/README.md"} <= checked


@pytest.mark.parametrize("heading, slug", [
    # anchors that GitHub made for headings of this repository, and that links here use
    ("Paper scale: Adam, 2×1,000 units (`sequence/paper/`)", "paper-scale-adam-21000-units-sequencepaper"),
    ("How the settings were chosen (validation data, never the test set)",
     "how-the-settings-were-chosen-validation-data-never-the-test-set"),
    ("CI runs (`.ci/run` on a fresh clone)", "ci-runs-cirun-on-a-fresh-clone"),
    ("Reliability: a bad value loses nothing", "reliability-a-bad-value-loses-nothing"),
    ("The stability–plasticity front (`sweep/`)", "the-stabilityplasticity-front-sweep"),
    ("Why float64 (`runtime.precision`, the default)", "why-float64-runtimeprecision-the-default"),
    ("What `check_params` does", "what-check_params-does"),
    ("A [link](x.md) in a heading", "a-link-in-a-heading"),
])
def test_slugs_follow_githubs_rules(heading, slug):
    assert github_slug(heading) == slug


def test_link_check_finds_a_missing_file_a_missing_heading_and_a_repeated_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#twice-1) [ok](#page) [ok](https://example.org/x.md) `[code](gone.md)`\n"
        "[gone](gone.md) [bad anchor](other.md#thrice) [bad here](#nowhere)\n\n"
        "```\n[in a fence](gone.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page, root=tmp_path) == [
        "4: gone.md (no such file)",
        "4: other.md#thrice (no heading #thrice in other.md)",
        "4: #nowhere (no heading #nowhere in page.md)",
    ]


def test_the_licence_is_mit_in_license_pyproject_and_citation():
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License") and "Permission is hereby granted, free of charge" in licence
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    declared = project["license"] if isinstance(project["license"], str) else project["license"].get("text")
    assert declared == "MIT" and str(citation["license"]) == "MIT"
    assert "LICENSE" in project.get("license-files", ["LICENSE"])


def test_citation_names_the_version_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0"
    assert str(citation["version"]) == project["version"]
    assert citation["title"] and citation["authors"] and citation["message"]


def _first_table(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_the_front_page_s_scenario_table_is_the_committed_report_s():
    """The README's three-scenario table is the first table of scenarios/report.md, which the pipeline writes from the
    committed runs: a rerun with more seeds or other λ that is not copied to the front page fails here."""
    readme = README.read_text()
    block = readme[readme.index("<!-- BEGIN three-scenarios results"):readme.index("<!-- END three-scenarios results")]
    report = (ROOT / "scenarios" / "report.md").read_text()
    assert _first_table(block) == _first_table(report)
    seeds = yaml.safe_load((ROOT / "params.yaml").read_text())["scenarios"]["seeds"]
    assert f"{len(seeds)} seeds" in block or (len(seeds) == 1 and "one seed" in block)
