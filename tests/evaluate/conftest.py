from __future__ import annotations

import pytest

from dsc.threads import one_torch_thread


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield
