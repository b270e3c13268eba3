"""Only train and eval import torch: the demo, build, validate, release and download stay light.

webdataset imports torch when torch is installed (the test venv has it), so the demo, which loaded
its shards through webdataset, paid for torch's import and memory wherever the train extra was
installed. Each command runs in one fresh interpreter here, and the modules
it imported are looked at after each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Modules that come with training: none may be imported by a command that does not train.
HEAVY = ("torch", "torchvision", "open_clip", "webdataset")

SCRIPT = r"""
import json, sys
from imagenet_captions.cli import main
from imagenet_captions.sample import sample_paths

out, report, heavy = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
runs = [
    ["demo", "--out", out, "--per-class", "3"],
    ["build", "--metadata", "release:" + sample_paths(out + "/sample")[0], "--out", out + "/text-only"],
    ["validate", out + "/build"],
    ["release", out + "/build", "--out", out + "/release"],
    ["download", "--help"],
    ["harvest", "--help"],
]
seen = []
for argv in runs:
    try:
        rc = main(argv)
    except SystemExit as e:  # --help
        rc = e.code
    seen.append({"argv": argv, "rc": rc, "heavy": [m for m in heavy if m in sys.modules]})
with open(report, "w") as f:
    json.dump(seen, f)
"""


def test_commands_that_do_not_train_never_import_torch(tmp_path: Path) -> None:
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "demo"), str(report), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(report.read_text())
    assert len(runs) == 6
    for run in runs:
        assert run["rc"] in (0, None), (run, done.stderr[-3000:])
        assert run["heavy"] == [], f"{' '.join(run['argv'])} imported {run['heavy']}"
