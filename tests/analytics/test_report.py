"""`lmes report`: one self-contained HTML page, written whole, checked in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from matplotlib.image import imread

from lmes.replay.service import Replay, collect_logs
from lmes.store import open_store
from tests.analytics.builders import completed, failed, post_copy
from tests.conftest import REPO, run_lmes

CHROMIUM = "/usr/bin/chromium"

# A page that loads the report in a frame and writes what the browser rendered into its DOM,
# so `--dump-dom` hands the sizes of the plots and the visible text back to the test.
PROBE = """<!DOCTYPE html><html><body>
<iframe id="page" src="{report}" style="width:1200px;height:900px"></iframe>
<pre id="measured"></pre>
<script>
document.getElementById("page").addEventListener("load", function () {{
  var doc = this.contentDocument;
  var plots = Array.from(doc.querySelectorAll("svg, img")).map(function (el) {{
    var box = el.getBoundingClientRect();
    return {{tag: el.tagName.toLowerCase(), width: box.width, height: box.height}};
  }});
  var external = Array.from(doc.querySelectorAll("[src], link[href]")).length;
  document.getElementById("measured").textContent =
    JSON.stringify({{plots: plots, external: external, text: doc.body.innerText}});
}});
</script></body></html>
"""


@pytest.fixture
def recorded(lmes_home):
    store = open_store()
    migrations = {
        "vm-a": completed("vm-a", downtime_ms=120),
        "vm-b": failed("vm-b"),
        "vm-c": post_copy("vm-c"),
        "vm-d": completed("vm-d", downtime_ms=60, copy_s=200),
    }
    store.add(*migrations.values())
    return {name: str(m.id) for name, m in migrations.items()}


@pytest.fixture
def out(tmp_path) -> Path:
    """A folder for the report, apart from the store's."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _browser() -> str:
    if not Path(CHROMIUM).exists():
        installed = subprocess.run(
            ["apt-get", "install", "-y", "chromium"], capture_output=True, text=True
        )
        if installed.returncode != 0 or not Path(CHROMIUM).exists():
            pytest.skip(f"chromium cannot be installed: {installed.stderr.strip()[-200:]}")
    return CHROMIUM


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="lmes-chromium-")
    try:
        return subprocess.run(
            [
                _browser(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_report_renders_diagnosis_and_plots_in_a_real_browser(recorded, out):
    page = out / "report.html"
    result = run_lmes("report", "--html", str(page))
    assert result.returncode == 0, result.stderr
    assert "4 migration(s)" in result.stdout

    probe = out / "probe.html"
    probe.write_text(PROBE.format(report=page.name))
    dumped = _chromium("--allow-file-access-from-files", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="measured">(.*?)</pre>', dumped.stdout, re.S)
    assert found and found.group(1), dumped.stderr[-2000:]
    measured = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<"))
    # all migrations over time, two distributions, a timeline per migration, and a memory
    # curve per migration with progress reports
    assert len(measured["plots"]) == 1 + 2 + 4 + 3
    assert all(p["width"] > 100 and p["height"] > 100 for p in measured["plots"])
    assert measured["external"] == 0
    text = measured["text"]
    assert "Outcome: failed" in text
    assert "Live migration not completed after 1600 sec" in text
    assert "exponential (Liberty to Newton (Nova 12-14))" in text
    assert "completion timeout" in text

    shot = out / "report.png"
    _chromium("--window-size=1200,1600", f"--screenshot={shot}", page.as_uri())
    pixels = imread(shot)
    assert pixels.shape[0] == 1600 and pixels.std() > 0.05  # drawn, not a blank page


def test_report_of_chosen_migrations_only(recorded, out):
    page = out / "one.html"
    result = run_lmes("report", recorded["vm-c"][:8], "--html", str(page))
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert html.count('<section class="migration"') == 1
    assert "vm-c" in html and "vm-a" not in html
    assert not re.search(r"<script|<link|src=|href=\"http|url\((?!#)", html)


def test_a_bad_id_is_one_line_exit_2_and_no_file(recorded, out):
    page = out / "bad.html"
    result = run_lmes("report", recorded["vm-a"], "ffff0000", "--html", str(page))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["lmes: no migration ffff0000 in the store"]
    assert not page.exists()
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--origin", "executor"], "no migrations in the store match"),
        (["--html", "/nonexistent-folder/r.html"], "folder /nonexistent-folder does not exist"),
        ([], "the following arguments are required: --html"),
    ],
)
def test_nothing_to_report_or_nowhere_to_write_is_a_user_error(recorded, out, args, message):
    given = args if "--html" in args or not args else [*args, "--html", str(out / "r.html")]
    result = run_lmes("report", *given)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert list(out.iterdir()) == []


def test_report_of_a_replayed_migration_names_the_ramp_and_its_phases(lmes_home, out):
    seed_logs = REPO / "examples" / "seed"
    replayed = list(Replay(collect_logs([str(seed_logs)]), store=open_store()).migrations())
    assert len(replayed) == 1
    page = out / "seed.html"
    result = run_lmes("report", "--origin", "replay", "--html", str(page))
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert "Outcome: completed" in html
    assert "exponential (Liberty to Newton" in html
    assert "live_migration_downtime 500 ms, 10 steps, delay 75 s/GiB, data_gb 2.0" in html
    assert "pre_live_migration" in html and html.count("<svg") == 2
