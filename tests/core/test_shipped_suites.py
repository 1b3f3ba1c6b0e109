"""Every shipped suite validates, and its methods accept their parameters."""

import pytest

from t2ibench.registry import DATASETS, METHODS, METRICS
from t2ibench.suite import load_suite, shipped_suites


@pytest.mark.parametrize("name", sorted(shipped_suites()))
def test_shipped_suite_is_valid(name):
    suite = load_suite(shipped_suites()[name])
    assert suite.name == name
    for i, m in enumerate(suite.methods):
        METHODS.get(m.name).build(m.params, where=f"{name}: methods[{i}]")
    for ps in suite.prompt_sets:
        DATASETS.get(ps.dataset)
    for metric in suite.metrics:
        METRICS.get(metric.name)
