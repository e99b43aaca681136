"""`igs-tex report` end to end on a small crop, the page in headless Chromium, and the
comparison arithmetic (log-rate interpolation, next-up points, verdicts) on made-up numbers.

Chromium comes from Debian (tools/install_report_deps.sh). As with the shader drivers, a
missing browser is an error, not a skip: a report that silently stops rendering must not pass.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from igs_tex.bakes.comparison import parse_list
from igs_tex.report.comparison import IGS, Comparison, compare, interpolate_log_rate, verdict
from igs_tex.report.svgplot import Series, rd_plot

REPO = Path(__file__).resolve().parents[1]
RATES = ("0.12", "0.25")
CODECS = ("bc1", "bc7", "astc12x12")
MIPS = ("0", "1")


def run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "igs_tex.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def _crop(dst: Path, size: int = 64) -> Path:
    # The committed assets, not shared/materials: the report is about what ships in the repo.
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted((REPO / "assets" / "walnut_wood").glob("*.png")):
        Image.open(f).crop((200, 200, 200 + size, 200 + size)).save(dst / f.name)
    return dst


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    src = _crop(root / "walnut_wood")
    out = root / "out"
    r = run(
        "report",
        src,
        "-o",
        out,
        "--rates",
        ",".join(RATES),
        "--steps",
        40,
        "--codecs",
        ",".join(CODECS),
        "--mips",
        ",".join(MIPS),
    )
    assert r.returncode == 0, r.stderr
    return out, r


def test_report_writes_page_markdown_json_and_images(report):
    out, r = report
    index = out / "index.html"
    assert r.stdout.strip().splitlines()[-1] == str(index)
    assert "[1/8]" in r.stderr and "[8/8]" in r.stderr and "astc12x12 at mip 1" in r.stderr
    for name in ("index.html", "report.md", "results.json", "rd_all_psnr.svg", "rd_basecolor_psnr.svg"):
        assert (out / name).is_file(), name
    assert len(list((out / "igs").glob("*.igs"))) == len(RATES)
    pngs = list(out.glob("*.png"))
    assert len(pngs) >= 2 * (1 + len(CODECS)) * len(RATES)
    for p in pngs:
        with Image.open(p) as im:
            assert im.size[0] >= 16 and im.mode == "RGB", p.name


def test_every_local_reference_in_the_page_exists(report):
    out, _ = report
    html = (out / "index.html").read_text()
    refs = set(re.findall(r'(?:src|href)="([^"#:]+)"', html))
    assert any(x.endswith("_err.png") for x in refs) and any(x.endswith("_crop.png") for x in refs)
    missing = [x for x in refs if not (out / x).exists()]
    assert not missing, missing


def test_svg_plots_are_well_formed_and_show_every_method(report):
    out, _ = report
    for svg in out.glob("rd_*.svg"):
        root = ET.fromstring(svg.read_text())
        assert root.tag.endswith("svg"), svg.name
    text = (out / "rd_all_psnr.svg").read_text()
    for name in (IGS, *CODECS):
        assert f'data-series="{name}"' in text
    assert text.count("<circle") >= len(RATES)


def test_markdown_and_json_hold_every_row(report):
    out, _ = report
    data = json.loads((out / "results.json").read_text())
    methods = [r["method"] for r in data["rows"]]
    assert methods.count(IGS) == len(RATES)
    assert sorted(set(methods) - {IGS}) == sorted(CODECS)
    assert len(methods) == len(RATES) + len(CODECS) * len(MIPS)
    igs_rates = sorted(r["target_bppc"] for r in data["rows"] if r["method"] == IGS)
    assert igs_rates == [float(x) for x in RATES]
    for r in data["rows"]:
        assert set(r["metrics"]) == {"basecolor", "normal", "roughness", "metalness", "all"}
        assert r["bppc"] > 0 and r["bppc_total"] >= r["bppc"] * 0.99
    assert data["versions"]["codecs"]["astc-encoder-py"]
    md = (out / "report.md").read_text()
    assert md.count("| **igs-tex** |") == len(RATES)
    assert "next-up" in md and "| astc12x12 |" in md
    for v in ("above", "below", "at"):
        md = md.replace(f"| {v} |", "| VERDICT |")
    assert "| VERDICT |" in md


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    src = _crop(tmp_path / "walnut_wood", 32)
    cases = [
        (tmp_path / "nope", "--rates", "0.25"),
        (src, "--rates", "0.25,abc"),
        (src, "--rates", "-1"),
        (src, "--rates", "0.0001"),  # too few Gaussians for 32x32
        (src, "--rates", "0.25", "--codecs", "bc1,bc99"),
        (src, "--rates", "0.25", "--mips", "0,9"),
        (src, "--rates", "0.25", "--steps", "0"),
    ]
    for i, (material, *opts) in enumerate(cases):
        out = tmp_path / f"out{i}"
        r = run("report", material, "-o", out, *opts)
        assert r.returncode == 2, (opts, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("igs-tex report: error:"), (opts, r.stderr)
        assert not out.exists(), opts


# --------------------------------------------------------------------------- headless Chromium


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium not found: run tools/install_report_deps.sh")
    return exe


def test_page_renders_in_headless_chromium(report, tmp_path):
    out, _ = report
    shot = tmp_path / "report.png"
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        (out / "index.html").resolve().as_uri(),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in r.stderr.splitlines() if "Uncaught" in line], console
    assert not [line for line in r.stderr.splitlines() if "ERR_FILE_NOT_FOUND" in line]
    # The page's script logs this last: its absence means the script never ran to the end.
    assert any("igs-report: ready" in line for line in console), r.stderr[-2000:]
    assert shot.is_file()
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (2000, 1280)
    colours = np.unique(img.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 50, "screenshot is (nearly) a single colour"
    assert (img.min(axis=2) < 128).mean() > 0.01, "screenshot has almost no dark pixels: nothing drawn?"


# --------------------------------------------------------------------------- comparison arithmetic


def test_interpolation_is_linear_in_log_rate():
    pts = [(0.1, 30.0), (0.4, 34.0)]
    assert interpolate_log_rate(pts, 0.2) == pytest.approx(32.0)
    assert interpolate_log_rate(pts, 0.1) == 30.0 and interpolate_log_rate(pts, 0.4) == 34.0
    assert interpolate_log_rate(pts, 0.05) is None and interpolate_log_rate(pts, 0.5) is None
    assert interpolate_log_rate([(0.1, math.inf), (0.4, math.inf)], 0.2) == math.inf
    assert interpolate_log_rate([(0.1, 30.0), (0.4, math.inf)], 0.2) == 30.0


def _fake(igs: list[tuple[float, float]], codec: dict[str, list[tuple[float, float]]]) -> Comparison:
    def row(method, bppc, p, mip=None):
        return {
            "method": method,
            "label": method,
            "mip": mip,
            "target_bppc": round(bppc, 2),
            "bppc": bppc,
            "bppc_total": bppc * 1.5,
            "gaussians": 1,
            "metrics": {"all": {"psnr": p, "ssim": 0.9}},
        }

    rows = [row(IGS, b, p) for b, p in igs]
    for name, pts in codec.items():
        rows += [row(name, b, p, mip=i) for i, (b, p) in enumerate(sorted(pts, reverse=True))]
    return Comparison("fake", "", 8, 8, ["r"], {}, None, rows, {"rates": []}, {}, {})


def test_compare_uses_the_next_up_point_and_interpolation():
    c = _fake([(0.1, 33.0), (0.3, 35.05)], {"bc1": [(0.5, 35.0), (0.125, 32.0), (0.03125, 30.0)]})
    low, high = compare(c)
    assert low["next_up"]["bppc"] == 0.125 and low["next_up"]["mip"] == 1
    assert low["delta_next_up"] == pytest.approx(1.0) and low["verdict_next_up"] == "above"
    t = math.log(0.1 / 0.03125) / math.log(0.125 / 0.03125)
    assert low["interp"] == pytest.approx(30.0 + t * 2.0)
    assert high["next_up"]["bppc"] == 0.5 and high["verdict_next_up"] == "at"  # +0.05 dB is a tie
    assert high["interp_at_total"] == pytest.approx(interpolate_log_rate([(0.125, 32.0), (0.5, 35.0)], 0.45))
    c = _fake([(0.9, 40.0)], {"bc1": [(0.5, 35.0)]})
    (e,) = compare(c)
    assert e["next_up"] is None and e["verdict_next_up"] == "n/a" and e["interp"] is None


def test_verdict_band_and_list_parsing():
    assert verdict(0.2) == "above" and verdict(-0.2) == "below" and verdict(0.1) == "at"
    assert verdict(None) == "n/a" and verdict(0.0) == "at"
    assert parse_list("--rates", " 0.03, 0.06 ,", float) == [0.03, 0.06]


def test_svg_plot_drops_infinite_points_and_stays_well_formed():
    s = [
        Series(IGS, [(0.03, 30.0, "a"), (0.25, math.inf, "b <&>")]),
        Series("bc1", [(0.5, 31.0, "c")], marker="square"),
    ]
    svg = rd_plot(s, title="t <x>", xlabel="x", ylabel="y", vlines=[0.03, 0.25], note="1 exact point not drawn")
    ET.fromstring(svg)
    assert svg.count("<circle") == 2  # one data point + the legend marker for igs-tex
    empty = rd_plot([Series(IGS, [(0.1, math.inf, "")])], title="t", xlabel="x", ylabel="y")
    ET.fromstring(empty)
    assert "no finite values" in empty
