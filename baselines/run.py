"""Measure igs-tex against BC1, BC7 and ASTC on every sample material, in one run.

    python baselines/run.py [--steps N] [--reports DIR] [--source DIR --label NAME]

For each material folder in assets/ (or --source) this bakes igs-tex at each target rate and
runs the baselines at mip levels 0..3 (igs_tex.report.comparison: the same code as `igs-tex
report`), then writes baselines/RESULTS.md (tables, settings, versions, machine) and the raw
numbers to baselines/results/<material>.json. With --label NAME they go to
baselines/RESULTS-NAME.md and baselines/results-NAME/ instead, e.g. for the full-size shared set:
`--source ../shared/materials --label shared1024`. `--render-only` rewrites the Markdown from
those JSON files without measuring anything, for when only the presentation changed.

Quality numbers do not depend on the machine (bakes are deterministic for a given build);
wall times do.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from igs_tex import IgsError  # noqa: E402
from igs_tex.bakes.comparison import parse_list, run_comparison  # noqa: E402
from igs_tex.fit.settings import DEFAULT_STEPS  # noqa: E402
from igs_tex.report.comparison import DEFAULT_RATES, Comparison, compare  # noqa: E402
from igs_tex.report.markdown import (  # noqa: E402
    COMPARE_NOTE,
    fmt_db,
    fmt_delta,
    fmt_rate,
    group_delta_table,
    rd_table,
    settings_lines,
    verdict_table,
)

CODECS = ("bc1", "bc7", "astc6x6", "astc8x8", "astc12x12")
MIPS = (0, 1, 2, 3)
# The claim being checked: above BC1 and BC7, at or above ASTC 12x12.
JUDGED = (("bc1", ("above",)), ("bc7", ("above",)), ("astc12x12", ("above", "at")))
FULL_STEPS = DEFAULT_STEPS


def result_paths(label: str | None) -> tuple[Path, Path]:
    """Where one run's Markdown and JSON go: the sample set's by default, a labelled pair else."""
    if not label:
        return REPO / "baselines" / "RESULTS.md", REPO / "baselines" / "results"
    if not label.replace("-", "").replace("_", "").isalnum():
        raise IgsError(f"--label {label!r}: use letters, digits, '-' and '_' only")
    return REPO / "baselines" / f"RESULTS-{label}.md", REPO / "baselines" / f"results-{label}"


def find_materials(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "material.toml").exists())


def normal_rebuild_ceiling(c: Comparison) -> float | None:
    """Normal-group PSNR of the exact XY with Z rebuilt as sqrt(1 - x^2 - y^2), as the BC5 and
    ASTC normal-mode baselines decode it: the best any of them can score on this map."""
    import numpy as np

    from igs_tex.material import load_material
    from igs_tex.metrics import psnr

    if "normal" not in c.groups or len(c.groups["normal"]) != 3:
        return None
    n = load_material((REPO / c.source).resolve()).data[..., c.groups["normal"]]
    v = n.astype(np.float64) * 2.0 - 1.0
    rebuilt = n.astype(np.float64).copy()
    rebuilt[..., 2] = (np.sqrt(np.clip(1.0 - v[..., 0] ** 2 - v[..., 1] ** 2, 0.0, 1.0)) + 1.0) / 2.0
    return psnr(rebuilt, n)


def _cell(e: dict) -> str:
    return f"{fmt_delta(e['delta_next_up'])} ({e['verdict_next_up']}); interp. {fmt_delta(e['delta_interp'])}"


def select_named(items: list, text: str | None, where) -> list:
    """The items whose .name is in the comma-separated --materials text (all when it is empty)."""
    if not text:
        return items
    wanted = parse_list("--materials", text, str)
    missing = sorted(set(wanted) - {i.name for i in items})
    if missing:
        raise IgsError(f"--materials: no material {', '.join(missing)} in {where}")
    return [i for i in items if i.name in wanted]


def equal_rate_verdict(e: dict) -> str:
    """The verdict at igs-tex's own rate: interpolated, or the next-up point's where the rate is
    below the baseline's lowest point (never extrapolated)."""
    return e["verdict_interp"] if e["delta_interp"] is not None else e["verdict_next_up"]


def judged_points(comparisons: list[Comparison]) -> list[tuple[Comparison, float, dict, bool, bool]]:
    """(material, target rate, entries by codec, target met at next-up points, met at equal rate)."""
    out = []
    for c in comparisons:
        by_rate: dict[float, dict[str, dict]] = {}
        for e in compare(c, [codec for codec, _ in JUDGED]):
            by_rate.setdefault(e["target_bppc"], {})[e["codec"]] = e
        for rate, per in sorted(by_rate.items()):
            ok = all(codec in per and per[codec]["verdict_next_up"] in want for codec, want in JUDGED)
            ok_equal = all(codec in per and equal_rate_verdict(per[codec]) in want for codec, want in JUDGED)
            out.append((c, rate, per, ok, ok_equal))
    return out


def summary_table(comparisons: list[Comparison]) -> str:
    head = ["material", "target", "igs-tex bppc (params / file)", "igs-tex PSNR all"]
    head += [f"vs {codec}: Δ dB at next-up point (verdict); interpolated" for codec, _ in JUDGED]
    head += ["above BC1 & BC7, ≥ ASTC 12x12: at next-up points", "at equal rate"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join([":---"] * 2 + ["---:"] * 2 + [":---"] * (len(JUDGED) + 2)) + "|",
    ]
    points = judged_points(comparisons)
    for c, rate, per, ok, ok_equal in points:
        any_e = next(iter(per.values()))
        cells = [
            c.name,
            f"{rate:g}",
            f"{fmt_rate(any_e['igs_bppc'])} / {fmt_rate(any_e['igs_bppc_total'])}",
            fmt_db(any_e["igs"]),
        ]
        cells += [_cell(per[codec]) if codec in per else "not run" for codec, _ in JUDGED]
        cells += ["yes" if ok else "no", "yes" if ok_equal else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Target met at {sum(p[3] for p in points)} of {len(points)} points against the baselines' "
        f"next-up points (they get at least as many bits), at {sum(p[4] for p in points)} of {len(points)} "
        "at equal rate (interpolated in log(rate); the next-up point where igs-tex's rate is below a "
        "baseline's lowest, as `baselines/compact_params.py` judges its layouts).",
    ]
    return "\n".join(lines)


def results_markdown(comparisons: list[Comparison], command: str, json_dir: Path) -> str:
    first = comparisons[0]
    steps = first.settings["steps"]
    out = [
        "# igs-tex vs BCn / ASTC: measured results",
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d')}; every number below comes from that "
        "one run (igs-tex bakes and baselines alike). Do not edit by hand: rerun it. Raw numbers: "
        f"`{json_dir.relative_to(REPO)}/<material>.json`.",
        "",
    ]
    if steps < FULL_STEPS:
        out += [
            f"**Reduced schedule:** igs-tex was baked with {steps} optimisation steps instead of the "
            f"default {FULL_STEPS} to fit the time available, so its rows understate what a full bake "
            "reaches. The baseline rows do not depend on it.",
            "",
        ]
    out += ["## Settings", ""]
    out += [line for line in settings_lines(first) if not line.startswith(("- material", "- wall time"))]
    out += [
        "",
        "## How rates are compared",
        "",
        COMPARE_NOTE,
        "",
        "PSNR is over the stored values (sRGB codes for base colour, [0, 1]-encoded normals, linear "
        "roughness/metalness), pooled over all channels ('all') or per channel group; 'inf' means exact. "
        "Baseline normals are BC5 (BC1/BC7 schemes) or ASTC normal mode, Z rebuilt at decode; "
        "ORM maps share one texture of the scheme's format.",
        "",
        "## Summary: igs-tex against BC1, BC7 and ASTC 12x12 (PSNR of all channels)",
        "",
        summary_table(comparisons),
        "",
    ]
    ceilings = {c.name: normal_rebuild_ceiling(c) for c in comparisons}
    capped = [name for name, v in ceilings.items() if v is not None and v < 40.0]
    if capped:
        out += [
            f"Read the {', '.join(capped)} rows with the caveat in that section: its normals are not unit "
            "length, which caps every baseline's normal PSNR whatever its rate.",
            "",
        ]
    for c in comparisons:
        out += [
            f"## {c.name}",
            "",
            f"{c.width}x{c.height}, channels {', '.join(c.channels)}; wall time: "
            f"igs-tex bakes {c.seconds.get('igs_bakes', 0):.0f} s, baselines {c.seconds.get('baselines', 0):.0f} s.",
            "",
        ]
        ceiling = ceilings[c.name]
        if ceiling is not None and ceiling < 40.0:
            out += [
                f"**Caveat:** this normal map is not unit length, so a baseline that stores X, Y and rebuilds "
                f"Z (BC5, ASTC normal mode) cannot score above {ceiling:.2f} dB normal PSNR even with exact X, Y; "
                "its normal (and 'all') PSNR mostly measures that mismatch. The normal angular-error column "
                "(both sides normalised) compares directions fairly.",
                "",
            ]
        out += [
            "### Verdicts (PSNR of all channels)",
            "",
            verdict_table(c, [x for x in ("bc1", "bc7", "astc6x6", "astc8x8", "astc12x12") if x in c.codecs()]),
            "",
            "### PSNR difference per channel group (igs-tex minus the baseline's next-up point)",
            "",
            group_delta_table(c),
            "",
            "### Rate-distortion points (every codec at every mip level)",
            "",
            rd_table(c),
            "",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=FULL_STEPS, help=f"igs-tex optimisation steps (default {FULL_STEPS})")
    ap.add_argument("--rates", default=",".join(f"{r:g}" for r in DEFAULT_RATES), help="igs-tex bppc targets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--source", type=Path, default=REPO / "assets", help="folder of material folders (default: assets/)"
    )
    ap.add_argument(
        "--label",
        default=None,
        help="write baselines/RESULTS-LABEL.md and baselines/results-LABEL/ (default: RESULTS.md, results/)",
    )
    ap.add_argument("--materials", default=None, help="comma-separated folder names under the source (default: all)")
    ap.add_argument(
        "--reports", type=Path, default=None, help="also write the full HTML report of each material to DIR/<material>/"
    )
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the Markdown from the saved JSON (of --label's run) without measuring",
    )
    a = ap.parse_args(argv)
    command = "python baselines/run.py" + "".join(
        f" {shlex.quote(x)}" for x in (argv if argv is not None else sys.argv[1:])
    )

    try:
        results_md, results_json = result_paths(a.label)
        if a.render_only:
            files = sorted(results_json.glob("*.json"))
            if not files:
                raise IgsError(f"{results_json}: no results to render; run without --render-only first")
            comparisons = [Comparison.from_json(json.loads(f.read_text())) for f in files]
            command = comparisons[0].settings.get("command", command)
        else:
            rates = parse_list("--rates", a.rates, float)
            if not a.source.is_dir():
                raise IgsError(f"--source {a.source}: not a folder")
            mats = select_named(find_materials(a.source), a.materials, a.source)
            comparisons = []
            results_json.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="igs-baselines-") as tmp:
                for m in mats:
                    work = (a.reports / m.name) if a.reports else Path(tmp) / m.name
                    c = run_comparison(m, work, rates=rates, steps=a.steps, codecs=CODECS, mips=MIPS, seed=a.seed)
                    c.settings["command"] = command
                    if a.reports:
                        from igs_tex.report.html import write_report

                        print(write_report(c, work), file=sys.stderr)
                    c.source = os.path.relpath(m.resolve(), REPO)
                    for r in c.igs_rows():
                        r["file"] = Path(r["file"]).name  # the bake folder may be temporary
                    (results_json / f"{m.name}.json").write_text(json.dumps(c.to_json(), indent=1) + "\n")
                    comparisons.append(Comparison.from_json(c.to_json()))
        results_md.write_text(results_markdown(comparisons, command, results_json))
    except IgsError as e:
        print(f"baselines/run.py: error: {e}", file=sys.stderr)
        return 2
    print(results_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
