"""baselines/run.py: where a labelled run writes, and its one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "baselines"))

import run as baselines_run  # noqa: E402


def script(*args):
    return subprocess.run(
        [sys.executable, str(REPO / "baselines" / "run.py"), *map(str, args)], capture_output=True, text=True, cwd=REPO
    )


def test_label_picks_its_own_files_and_the_default_keeps_the_sample_set():
    md, js = baselines_run.result_paths(None)
    assert (md.name, js.name) == ("RESULTS.md", "results")
    md, js = baselines_run.result_paths("shared1024")
    assert (md.name, js.name) == ("RESULTS-shared1024.md", "results-shared1024")
    assert md.parent == js.parent == REPO / "baselines"


@pytest.mark.parametrize("label", ["../x", "a b", "a/b", "x.md"])
def test_label_outside_the_baselines_folder_is_refused(label):
    r = script("--label", label, "--render-only")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--label" in lines[0] and label in lines[0]


def test_missing_source_and_empty_results_are_one_line_errors(tmp_path):
    r = script("--source", tmp_path / "nope", "--label", "pytest-missing")
    assert r.returncode == 2 and "nope" in r.stderr and "not a folder" in r.stderr
    assert not (REPO / "baselines" / "RESULTS-pytest-missing.md").exists()
    r = script("--render-only", "--label", "pytest-missing")
    assert r.returncode == 2 and "results-pytest-missing" in r.stderr and "no results" in r.stderr


def test_markdown_names_the_json_folder_it_came_from():
    from igs_tex.report.comparison import Comparison

    files = sorted((REPO / "baselines" / "results").glob("*.json"))
    assert files, "the committed sample-set results are missing"
    comps = [Comparison.from_json(json.loads(f.read_text())) for f in files[:1]]
    _, js = baselines_run.result_paths("shared1024")
    text = baselines_run.results_markdown(comps, "python baselines/run.py --label shared1024", js)
    assert "`baselines/results-shared1024/<material>.json`" in text
    assert comps[0].name in text


def test_equal_rate_verdicts_agree_with_the_layout_script_on_the_committed_results():
    import compact_params

    from igs_tex.report.comparison import Comparison, verdict

    comps = [
        Comparison.from_json(json.loads(f.read_text())) for f in sorted((REPO / "baselines" / "results").glob("*.json"))
    ]
    points = baselines_run.judged_points(comps)
    assert len(points) == sum(len(c.igs_rows()) for c in comps) >= 16
    fell_back = 0
    for c, _rate, per, _, ok_equal in points:
        for codec, e in per.items():
            value, how = compact_params.baseline_at(c, codec, e["igs_bppc"])
            assert baselines_run.equal_rate_verdict(e) == verdict(e["igs"] - value)
            fell_back += bool(how)
        wants = dict(baselines_run.JUDGED)
        assert ok_equal == all(baselines_run.equal_rate_verdict(per[k]) in wants[k] for k in wants)
    assert fell_back > 0  # some rate is below a baseline's lowest point, so both rules are exercised
