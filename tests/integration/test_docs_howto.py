"""The how-to and explanation pages (docs/howto, docs/explanation) and the README's links, as a reader
meets them: every relative link leads to a page or image that exists, and the settings the guides tell a
site to copy do what the guides say (a copied scope policy passes check E009, a copied logging
configuration redacts the callback's code and state).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from django.utils.module_loading import import_string

from django_duo_oidc.policy.rules import policy_problems

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted([*DOCS.glob("howto/*.md"), *DOCS.glob("explanation/*.md")])
# Generated from the code by the docs build (docs/reference/*.md): the names the pages may link to.
REFERENCE_PAGES = {"settings", "models", "checks", "signals", "commands", "api", "urls"}
LINK = re.compile(r"\]\(([^)\s]+)\)")
# MyST's {image} and {include} directives name a file on their first line.
DIRECTIVE_FILE = re.compile(r"^```\{(?:image|include)\} (\S+)$", re.MULTILINE)


def relative_targets(text: str) -> list[str]:
    """The relative link and directive targets of a Markdown page (no scheme, no pure #anchor)."""
    targets = LINK.findall(text) + DIRECTIVE_FILE.findall(text)
    return [t for t in targets if "://" not in t and not t.startswith(("#", "mailto:"))]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def test_there_are_pages() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"howto/set-up-duo.md", "howto/multi-worker.md", "explanation/token-validation.md"} <= names


@pytest.mark.parametrize("page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    broken = []
    for target in relative_targets(page.read_text()):
        path = (page.parent / target.split("#", 1)[0]).resolve()
        generated = path.parent == (DOCS / "reference").resolve() and path.stem in REFERENCE_PAGES
        if not (path.exists() or generated):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_one_top_heading_and_code_blocks_name_their_language(page: Path) -> None:
    text = re.sub(r"^```.*?^```$", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    assert len(re.findall(r"^# ", text, re.MULTILINE)) == 1
    fences = re.findall(r"^```(.*)$", page.read_text(), re.MULTILINE)
    openings = fences[::2]
    assert "" not in openings  # every fenced block says its language (or is a MyST directive)


def test_the_scope_policy_of_the_guide_passes_check_e009() -> None:
    """A site that copies the guide's SCOPE_POLICY gets a policy the middleware can apply."""
    blocks = [b for b in python_blocks((DOCS / "howto" / "scope-rules.md").read_text()) if "SCOPE_POLICY" in b]
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    exec(blocks[0], namespace)  # the page's own example, from the repository
    assert namespace["DUO_OIDC"]["SCOPE_POLICY"]
    assert policy_problems(namespace["DUO_OIDC"]["SCOPE_POLICY"]) == []


def test_the_logging_of_the_guide_redacts_the_callbacks_code_and_state() -> None:
    """The access-log configuration of the multi-worker guide, as a site copies it: the handler of
    django.server carries the filter, and the filter leaves no code or state in a callback's log line."""
    blocks = [b for b in python_blocks((DOCS / "howto" / "multi-worker.md").read_text()) if "LOGGING" in b]
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    exec(blocks[0], namespace)  # the page's own example, from the repository
    config = namespace["LOGGING"]
    handlers = config["loggers"]["django.server"]["handlers"]
    filter_names = {name for handler in handlers for name in config["handlers"][handler].get("filters", [])}
    assert filter_names
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s %s',
        ("GET /oidc/callback/?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj HTTP/1.1", "302", "0"), None,
    )  # fmt: skip
    for name in filter_names:
        factory = import_string(config["filters"][name]["()"])
        assert factory().filter(record)
    line = record.getMessage()
    assert "/oidc/callback/" in line
    assert "SplxlOBeZQQYbYS6WxSbIA" not in line
    assert "af0ifjsldkj" not in line


def test_no_page_points_at_files_outside_the_repository() -> None:
    """The README once cited ../shared/DUO.md, a file of the maintainers' workspace that readers lack."""
    for page in [*PAGES, ROOT / "README.md"]:
        assert "../shared/" not in page.read_text(), page
