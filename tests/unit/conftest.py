from __future__ import annotations

import pytest

from tests.tiny_models import save_tiny_classifier


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir):
    from worker.scoring import load_classifier

    return load_classifier(tiny_model_dir, device="cpu", version="tiny-v1")
