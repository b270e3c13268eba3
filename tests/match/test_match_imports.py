"""The match core stays plain Python: Beam wraps it, and workers and tests load it without Beam,
torch or the columnar stack."""

from __future__ import annotations

import subprocess
import sys


def test_the_core_imports_and_matches_without_beam_torch_or_pyarrow():
    code = (
        "import sys\n"
        "from imagenet_captions.match import balance, matcher, options, vocabulary\n"
        "m = matcher.Matcher(vocabulary.load_vocabulary('wordnet', 'ilsvrc2012'), options.MatchRule())\n"
        "assert m.match_many(['a <b>lion</b>'])[0][0][0] == 'n02129165'\n"
        "balance.select('n02129165', ['a', 'b'], 1, 0)\n"
        "heavy = {'apache_beam', 'torch', 'pyarrow', 'pandas', 'numpy'}\n"
        "print(sorted({k.split('.')[0] for k in sys.modules} & heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
