import pytest


@pytest.fixture(scope="session")
def tiny_sd():
    from t2ibench.tiny_models import tiny_sd_pipeline

    return tiny_sd_pipeline(0)
