import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
BROKEN = FIXTURES / "broken_encoders.py"

torch.set_num_threads(int(os.environ.get("XBENCH_NUM_THREADS", "1")))


@pytest.fixture
def broken_module():
    from xbench.encoder_contract import _import_file

    return _import_file(BROKEN)
