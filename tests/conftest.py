import torch

# The unit tests train tiny models: one thread is faster than two for them, and immune to a busy machine.
torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run the tests marked slow (minutes of training)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    import pytest

    skip = pytest.mark.skip(reason="slow (minutes of training): run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
