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

"""Copyright and licence headers: our own check everywhere, ament_copyright on ROS hosts."""
import re
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
# The Apache License's own notice for applying it to a file (its appendix), which is
# also what ament_copyright's "apache2" template recognises.
NOTICE = [
    'Licensed under the Apache License, Version 2.0 (the "License");',
    "you may not use this file except in compliance with the License.",
    "You may obtain a copy of the License at",
    "",
    "    http://www.apache.org/licenses/LICENSE-2.0",
    "",
    "Unless required by applicable law or agreed to in writing, software",
    'distributed under the License is distributed on an "AS IS" BASIS,',
    "WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.",
    "See the License for the specific language governing permissions and",
    "limitations under the License.",
]


def header_problem(text: str) -> str:
    """'' when the file opens (after any #! line) with the copyright line and the notice."""
    lines = text.splitlines()
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    comments = [line[1:].removeprefix(" ") for line in lines[:13] if line.startswith("#")]
    if len(comments) < 13 or not comments[0].startswith("Copyright "):
        return "no '# Copyright <year> <holder>' header at the top"
    year = comments[0].split()[1]
    if not (year.isdigit() and len(year) == 4):
        return f"copyright line without a year: {comments[0]!r}"
    if comments[1] != "" or comments[2:13] != NOTICE:
        return "the Apache-2.0 notice is missing or altered"
    return ""


def python_files() -> list[str]:
    """List the package's Python files: git's where it is a checkout, else the tree's.

    A source tarball or a copy into a colcon workspace has no .git; build outputs and
    venvs there are not the package's own files.
    """
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=PACKAGE, capture_output=True,
                            text=True)
    if listed.returncode == 0:
        return listed.stdout.split()
    skip = {"build", "install", "log"}
    return [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
            if not any(part in skip or part.startswith(".")
                       for part in p.relative_to(PACKAGE).parts[:-1])]


def test_every_python_file_has_the_header():
    files = python_files()
    assert len(files) > 50
    problems = {f: header_problem((PACKAGE / f).read_text()) for f in files
                if (PACKAGE / f).is_file()}
    assert not {f: p for f, p in problems.items() if p}


def test_header_check_finds_what_is_wrong():
    good = "# Copyright 2026 canet_ros developers\n#\n" + "".join(
        f"# {line}".rstrip() + "\n" for line in NOTICE) + '"""Doc."""\n'
    assert header_problem(good) == ""
    assert header_problem("#!/usr/bin/env python3\n" + good) == ""
    assert "no '# Copyright" in header_problem('"""Doc."""\n')
    assert "altered" in header_problem(good.replace("2.0 (the", "3.0 (the"))
    assert "without a year" in header_problem(good.replace("2026", "MMXX"))


def test_licence_file_is_the_apache_licence_the_metadata_names():
    """The headers point at a licence: LICENSE must be its text, and package.xml, setup.py agree.

    Packagers (bloom, Debian) and pip's wheel metadata (``licenses/LICENSE``) take the file.
    """
    text = (PACKAGE / "LICENSE").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[:2] == ["Apache License", "Version 2.0, January 2004"]
    assert "END OF TERMS AND CONDITIONS" in lines
    # Its nine sections, numbered as the licence numbers them.
    assert re.findall(r"^ +(\d)\. [A-Z]", text, re.M) == [str(n) for n in range(1, 10)]
    assert "<license>Apache-2.0</license>" in (PACKAGE / "package.xml").read_text()
    assert 'license="Apache-2.0"' in (PACKAGE / "setup.py").read_text()


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    main = pytest.importorskip(
        "ament_copyright.main",
        reason="ament_copyright is not installed (no ROS 2 here); colcon test runs it").main
    rc = main(argv=[str(PACKAGE / "canet_ros"), str(PACKAGE / "launch"),
                    str(PACKAGE / "test"), str(PACKAGE / "tools"), str(PACKAGE / "setup.py")])
    assert rc == 0, "Found errors"
