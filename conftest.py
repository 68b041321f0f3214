"""Repository-wide pytest set-up: deterministic, single-threaded torch for reproducible parity runs."""

import pytest
import torch

torch.set_num_threads(1)  # small tensors: threading costs more than it gains


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="device for parity tests: cpu or cuda")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    dev = request.config.getoption("--device")
    if dev == "cuda" and not torch.cuda.is_available():
        pytest.skip("--device cuda given but no CUDA device is present")
    return dev
