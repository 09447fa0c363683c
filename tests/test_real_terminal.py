"""The CLI as a person sees it: under a pseudo-terminal (a progress bar), in a log (plain
lines), and its HTML report in a real browser (headless Chromium, plots loaded)."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

CONFIG = ("task: forecast\ndata:\n  dataset: airline_passengers\n  test_size: 12\n"
          "model:\n  lookback: 12\n  epochs: 2\n  hidden_size: 4\n  num_layers: 1\n")  # fmt: skip


def _train(tmp_path, name: str) -> list[str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    return [sys.executable, "-m", "deeprnn", "train", str(cfg), "--run-dir", str(tmp_path / name)]


def test_a_terminal_gets_a_progress_bar(tmp_path):
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.Popen(_train(tmp_path, "tty"), stdin=child, stdout=child, stderr=child,
                            env=env, close_fds=True)  # fmt: skip
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=120) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert re.search(r"epoch 2/2: 100%\|.+\| \d+/\d+ \[", screen), screen[-2000:]  # tqdm's bar
    assert "\r" in screen and "samples_s=" in screen  # redrawn in place, throughput shown
    assert "epoch 1/2: train_loss" not in screen  # no plain log lines on a terminal


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """A run whose stderr is a pipe, as in a log or CI: (run directory, its stderr)."""
    tmp = tmp_path_factory.mktemp("log")
    done = subprocess.run(_train(tmp, "run"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return tmp / "run", done.stderr


def test_a_log_gets_one_plain_line_per_epoch(logged_run):
    _, stderr = logged_run
    lines = [x for x in stderr.splitlines() if x.startswith("epoch ")]
    assert len(lines) == 2 and "\r" not in stderr and "%|" not in stderr
    assert re.fullmatch(r"epoch 1/2: train_loss \S+, val_loss \S+, \d+ samples/s, \S+ s", lines[0])


CHECK = """<script>
window.addEventListener("load", () => {
  const found = [...document.images].map(i => [i.getAttribute("src"), i.naturalWidth,
                                               i.naturalHeight]);
  document.body.setAttribute("data-images", JSON.stringify(found));
});
</script>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (.ci/run installs it)")
def test_the_html_report_shows_its_plots_in_chromium(logged_run):
    run, _ = logged_run
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "<h2>Model</h2>" in page and "Training: trained all 2 epochs" in page
    probe = run / "probe.html"  # the report plus a script that lists the images
    probe.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        shown = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
             "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    found = re.search(r'data-images="([^"]*)"', shown.stdout)
    assert found, shown.stdout[-1000:] + shown.stderr[-1000:]
    images = json.loads(found.group(1).replace("&quot;", '"'))
    assert {src for src, _, _ in images} == {"plots/training.png", "plots/forecast.png"}
    for src, width, height in images:
        assert width > 200 and height > 200, (src, width, height)  # decoded, not broken
