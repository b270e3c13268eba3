"""Every ``type: ignore`` in the package names its error code and says why, on the same line.

mypy (pyproject's ``[tool.mypy]``, run by .ci/run) already refuses an ignore without a code or one
it no longer needs; the reason is for the reader, who must be able to tell a checker's blind spot
from a bug that was silenced.
"""

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline" / "imagenet_captions"
IGNORE = re.compile(r"#\s*type:\s*ignore(\[[a-z\-, ]+\])?(.*)$")


def test_every_type_ignore_has_a_code_and_a_reason():
    bare = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = IGNORE.search(line)
            if m and (m.group(1) is None or not re.match(r"\s*#\s*\S", m.group(2))):
                bare.append(f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}")
    assert not bare, "type: ignore without a code and a reason:\n" + "\n".join(bare)
