import subprocess
import sys

import lightning_genmetrics


def test_import_does_not_load_lightning():
    code = (
        "import sys, lightning_genmetrics\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api_is_exported():
    for name in lightning_genmetrics.__all__:
        assert hasattr(lightning_genmetrics, name), name
    for name in lightning_genmetrics.functional.__all__:
        assert callable(getattr(lightning_genmetrics.functional, name)), name
