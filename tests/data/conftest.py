import pytest


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Each test decodes into a cache of its own (beside its tmp_path, not in it), never the user's."""
    monkeypatch.setenv("AIGCKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
