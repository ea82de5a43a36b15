"""The repository stands alone: licence, citation metadata, and no references outside it."""
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

# Written in pieces so that this file does not match its own search.
OUTSIDE_REFERENCES = ("DESIGN" + ".md", ".." + "/shared")


def _tracked_files():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    return [REPO / name for name in names if name and (REPO / name).is_file()]


def test_no_tracked_file_refers_outside_the_repository():
    offenders = []
    for path in _tracked_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary test data
        offenders += [f"{path.relative_to(REPO)}: {ref}" for ref in OUTSIDE_REFERENCES
                      if ref in text]
    assert not offenders, offenders


def test_docs_that_readme_and_code_cite_exist():
    cited = set()
    for path in (REPO / "README.md", REPO / "fproi_jax" / "models" / "layers.py"):
        cited |= set(re.findall(r"docs/[\w.-]+\.md", path.read_text()))
    assert {"docs/design.md", "docs/measured_facts.md"} <= cited
    assert all((REPO / name).is_file() for name in cited), cited


def test_licence_is_apache_2():
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_citation_cff_parses_and_cites_the_paper():
    yaml = pytest.importorskip("yaml")
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["license"] == "Apache-2.0"
    for field in ("message", "title", "authors"):
        assert citation[field], field
    paper = citation["preferred-citation"]
    assert paper["doi"] == "10.1155/2021/6678031"
    assert paper["journal"] == "Journal of Healthcare Engineering" and paper["year"] == 2021
    assert paper["authors"][0]["family-names"] == "Dong"
    assert paper["title"].startswith("Fp(roi)-GAN with fused regional features")


def test_the_tree_passes_the_linter_of_pyproject():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
