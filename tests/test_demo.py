"""The main job on embedded defaults: the seed replayed and a simulation, into the default store."""

from lmes.store import open_store
from tests.conftest import run_lmes


def test_the_demo_fills_the_default_store_from_the_bundled_examples(lmes_home):
    out = run_lmes("demo", "--no-lab")
    assert out.returncode == 0, out.stderr
    assert "exponential" in out.stdout
    assert (lmes_home / "lmes.sqlite").is_file()
    origins = sorted(m.origin.value for m in open_store().migrations())
    assert origins == ["replay", "sim"]
    assert all(m.status.value == "completed" for m in open_store().migrations())
