"""The HTML report opened in a real headless browser (Debian's chromium): it renders, its
headings are there and every embedded figure decodes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

import recommend as rc
from recommend.insights import build_report

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Runs in the page once everything loaded and writes what it saw into the DOM.
_PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  const p = document.createElement("p");
  p.id = "render-probe";
  p.textContent = `images ${imgs.length} decoded ${ok}`;
  document.body.appendChild(p);
});
</script>"""


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def report(
    tmp_path_factory: pytest.TempPathFactory,
    sample_platform: rc.Platform,
    sample_dataset: rc.Dataset,
) -> Path:
    model = rc.EASE(l2=200.0).fit(sample_dataset)
    branch = str(sample_platform.members["org_id"].value_counts().index[0])
    out = tmp_path_factory.mktemp("report") / "report.html"
    return build_report(model, sample_dataset, out, org=branch, by=("occupation",), courses=1)


def _run(browser: str, args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, *_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    browser = _browser()
    if browser is None:
        pytest.skip("chromium is not installed and could not be installed (see .ci/run)")
    probed = tmp_path / "probed.html"
    text = report.read_text(encoding="utf-8")
    probed.write_text(text.replace("</body>", _PROBE + "\n</body>"), encoding="utf-8")
    dom = _run(
        browser,
        ["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
        tmp_path / "profile-dom",
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    n_images = text.count("<img ")
    assert n_images >= 6
    assert f'<p id="render-probe">images {n_images} decoded {n_images}</p>' in dom.stdout
    for heading in ("Member portraits", "Organisations", "What to offer next"):
        assert f"<h2>{heading}</h2>" in dom.stdout

    shot = tmp_path / "shot.png"
    run = _run(
        browser,
        ["--window-size=1200,1600", f"--screenshot={shot}", report.as_uri()],
        tmp_path / "profile-shot",
    )
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    # Not blank: plenty of non-white pixels, and the report's red headings are there.
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.02
    red = (pixels[..., 0] > 0.5) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3)
    assert red.sum() > 500
    assert np.unique(pixels.reshape(-1, 3), axis=0).shape[0] > 50
