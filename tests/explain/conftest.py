"""One walk-through computed once and shared: each takes about a second."""

from __future__ import annotations

import pytest

from gradsight.explain import ExplainConfig, Explanation, explain


@pytest.fixture(scope="package")
def explanation() -> Explanation:
    return explain(ExplainConfig(batch_size=3, seed=7))
