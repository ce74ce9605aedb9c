"""The serve tests' scratch: each test module's in-process servers keep their jobs' folders in a folder of its own.

The tests check that no job leaves a folder behind by listing ``serve_app.SCRATCH``; under pytest-xdist other workers'
servers create and remove theirs in the same ``/dev/shm`` at the same moments, which those checks would count.
"""

import pytest


@pytest.fixture(scope="module", autouse=True)
def _own_scratch(tmp_path_factory):
    try:
        from mgf.plugins.commands import serve_app
    except ImportError:  # without the serve extra: no server to keep apart
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serve_app, "SCRATCH", str(tmp_path_factory.mktemp("scratch")))
        yield
