"""Training never pulls in Apache Beam (train and eval run where Beam is not installed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imagenet_captions.train


def test_train_modules_import_without_beam():
    code = (
        "import sys\n"
        "import imagenet_captions.train.loop, imagenet_captions.train.command, imagenet_captions.train.data\n"
        "import imagenet_captions.train.checkpoint, imagenet_captions.testing.synthetic\n"
        "from imagenet_captions import cli\n"
        "try:\n    cli.main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'apache_beam' not in sys.modules, 'beam was imported'\n"
        "print('clean')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--shards" in r.stdout and "clean" in r.stdout


def test_no_beam_in_train_sources():
    root = Path(imagenet_captions.train.__file__).parent
    for f in root.glob("*.py"):
        assert "apache_beam" not in f.read_text(), f
