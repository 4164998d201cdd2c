# Copyright 2026 canet_ros developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Every section link in README.md and docs/*.md reaches a heading (GitHub's anchors).

own_data.md linked `#fine-tune` to the heading `## 5. Fine-tune`, whose anchor is
`#5-fine-tune`: both links went nowhere.
"""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s#]*)#([^)\s]+)\)")


def anchors(text: str) -> set:
    """Heading anchors as GitHub makes them: lower case, punctuation dropped, spaces -."""
    seen: dict = {}
    out = set()
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"#{1,6} +(.*?) *#*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_the_anchor_rule_matches_githubs_on_known_headings():
    assert anchors("## 5. Fine-tune\n") == {"5-fine-tune"}
    assert anchors("## `canet info` and `--system`\n") == {"canet-info-and---system"}
    assert anchors("# A\n# A\n") == {"a", "a-1"}
    assert anchors("```\n# not a heading\n```\n") == set()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_section_link_reaches_a_heading(doc):
    text = doc.read_text(encoding="utf-8")
    broken = []
    for target, anchor in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        page = (doc.parent / target) if target else doc
        if not page.is_file():
            broken.append(f"{target}#{anchor}: no such file")
        elif anchor not in anchors(page.read_text(encoding="utf-8")):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{doc.name}: links to no heading: {broken}"
