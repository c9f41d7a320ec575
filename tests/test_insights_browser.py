"""The HTML report opened in a real headless browser (Debian's chromium): it renders, its
headings are there, every figure is an SVG whose labels are text, and no label is drawn
as missing-glyph boxes, even when the machine that wrote the report had no CJK font."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import no_cjk_font
from matplotlib.image import imread

import recommend as rc
from recommend.insights import build_report
from recommend.insights.plots import use_cjk_font

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
# Runs in the page once everything loaded and writes what it saw into the DOM: the
# figures, their text elements, and every character the browser draws exactly like a
# character no font has (U+10FFFD): a missing glyph (tofu box). A hidden control label of
# a private-use character checks that the probe does see tofu.
_PROBE = r"""<svg id="control" width="0" height="0"><text>&#xE000;</text></svg>
<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  const figures = document.querySelectorAll("figure");
  const svgs = document.querySelectorAll("figure > svg");
  const texts = Array.from(document.querySelectorAll("figure svg text"));
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 64;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const draw = (ch, font) => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = font;
    ctx.textBaseline = "top";
    ctx.fillText(ch, 4, 4);
    return ctx.getImageData(0, 0, 64, 64).data;
  };
  const same = (a, b) => {
    for (let i = 3; i < a.length; i += 4) if (a[i] !== b[i]) return false;
    return true;
  };
  const tofu = (el) => {
    const font = "40px " + getComputedStyle(el).fontFamily;
    const box = draw("\u{10FFFD}", font);
    return Array.from(el.textContent).filter((ch) => ch.trim() && same(draw(ch, font), box));
  };
  const missing = new Set();
  let cjk = 0;
  for (const t of texts) {
    cjk += Array.from(t.textContent).filter((ch) => /[\u4e00-\u9fff]/.test(ch)).length;
    for (const ch of tofu(t)) missing.add(ch);
  }
  const control = tofu(document.querySelector("#control text")).length;
  const p = document.createElement("p");
  p.id = "render-probe";
  p.textContent = `images ${imgs.length} decoded ${ok} figures ${figures.length} ` +
    `svg ${svgs.length} texts ${texts.length} cjk ${cjk} control ${control} ` +
    `missing [${Array.from(missing).join("")}]`;
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
    """The report of a branch, written where matplotlib has no CJK font."""
    model = rc.EASE(l2=200.0).fit(sample_dataset)
    branch = str(sample_platform.members["org_id"].value_counts().index[0])
    out = tmp_path_factory.mktemp("report") / "report.html"
    with no_cjk_font():
        assert use_cjk_font(None) is None
        return build_report(model, sample_dataset, out, org=branch, by=("occupation",), courses=1)


def _probe(browser: str, text: str, tmp_path: Path) -> dict:
    """What the probe saw in the page ``text`` (counts, the missing characters, the DOM)."""
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("</body>", _PROBE + "\n</body>"), encoding="utf-8")
    dom = _run(
        browser,
        ["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
        tmp_path / "profile-dom",
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<p id="render-probe">(.*?) missing \[(.*?)\]</p>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    words = found.group(1).split()
    seen: dict = {k: int(v) for k, v in zip(words[::2], words[1::2], strict=True)}
    seen["missing"] = found.group(2)
    seen["dom"] = dom.stdout
    return seen


def test_no_figure_text_is_drawn_as_missing_glyphs(report: Path, tmp_path: Path) -> None:
    """Chinese labels reach the browser as text and it draws every character with a real
    glyph, although matplotlib had no CJK font when it wrote the report."""
    browser = _browser()
    if browser is None:
        pytest.skip("chromium is not installed and could not be installed (see .ci/run)")
    probe = _probe(browser, report.read_text(encoding="utf-8"), tmp_path)
    assert probe["control"] == 1  # the probe recognises a missing glyph
    assert probe["svg"] >= 6
    assert probe["cjk"] > 100  # titles, axis labels, segment names, course titles
    assert probe["missing"] == ""


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
    text = report.read_text(encoding="utf-8")
    probe = _probe(browser, text, tmp_path)
    n_figures = text.count("<figure>")
    assert n_figures >= 6
    # Every figure is an SVG (nothing to decode), whose labels are text elements.
    assert probe["images"] == probe["decoded"] == 0
    assert probe["figures"] == probe["svg"] == n_figures
    assert probe["texts"] > 10 * n_figures
    for heading in ("要点", "党员画像", "组织对比", "下一步提供什么课程", "详细数据"):
        assert f"<h2>{heading}</h2>" in probe["dom"]

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
