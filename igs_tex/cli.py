"""igs-tex command line: bake / decode / inspect. Argument parsing and printing only.

Exit codes (EXIT_CODES, shown by igs-tex --help): 0 success, 2 bad input or options (one line
on stderr naming the file and the problem, no output written), 1 an internal error (a bug:
traceback shown), 130 interrupted. A project bake (pipeline.toml) goes on past a failing
material and then exits 2, or 1 if a failure was a bug.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from . import IgsError, __version__
from .budget import DEFAULT_BPPC
from .config import DEFAULT_K, DEFAULT_MAX_SCALE, DEFAULT_SEED, DEVICES, PRESET_HELP, PRESETS
from .fit.settings import DEFAULT_STEPS

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    success
  {EXIT_INTERNAL}    internal error, a bug in igs-tex (a traceback is printed; please report it)
  {EXIT_USAGE}    bad input or usage: unreadable or inconsistent maps, a bad option or pipeline.toml
       key, an output that cannot be written (one line on stderr naming the file; nothing is
       baked or written). A project bake goes on past a failing material and then exits 2,
       or 1 if a failure was a bug
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
"""

_DESCRIPTION = """\
Compress PBR material texture stacks (base colour, normal, AO, roughness, metalness) into
a few thousand 2D Gaussians (Image-GS, SIGGRAPH 2025) stored in a .igs file that shaders can
sample directly.

  igs-tex bake assets/walnut_wood/ -o out/      # folder of maps -> out/walnut_wood.igs + .json
  igs-tex bake                                  # every material of ./pipeline.toml, if changed
  igs-tex decode out/walnut_wood.igs -o dec/    # back to maps named like the inputs
  igs-tex inspect out/walnut_wood.igs           # header, channels, sizes, tile statistics
"""


_BAKE_DESCRIPTION = """\
Bake a material folder into a .igs file, or every material of a project file.

One material:  igs-tex bake FOLDER [-o OUT] [options]
  Maps are found by name suffix, as Poly Haven, ambientCG, Substance, Quixel and Unreal
  name them (basecolor|diff|Color|D, normal|nor_gl|NormalDX, ao, roughness|gloss, metal|M,
  packed orm|arm, opacity); after the bake, stderr says what each file became (not with -q).
  Formats: PNG (8/16-bit), JPEG, TGA, EXR. Missing maps are simply absent channels.
  The budget is one of --bppc (default {bppc}), --gaussians or --kib.
  Writes OUT/<name>.igs and OUT/<name>.json (quality, sizes, timings), or with
  -o FILE.igs that file and FILE.json. Always bakes. The output location is checked
  before the fit. The .json is strict JSON: an infinite PSNR (an exact reconstruction,
  e.g. a constant map) is the string "inf".
  Progress goes to stderr: a bar on a terminal, else a line at each quarter of the fit.

A project:     igs-tex bake [--config pipeline.toml] [-j N] [--force] [options]
  With no FOLDER, bakes every [[material]] of ./pipeline.toml (or --config TOML):

    [defaults]                 # any key below, plus output = "out" and jobs = 1
    preset = "default"         # fast | default | high
    bppc = 0.059               # or kib = ..., or gaussians = ...
    device = "cpu"             # cpu | cuda | auto   (or backend = "torch" ...)
    [[material]]
    path = "assets/*/"         # folder, glob of folders, or an array; relative to the toml
    steps = 2000               # per-material overrides: preset, budget, steps, seed, k,
                               # max_scale, tile, device, output, name

  Later wins: built-in < [defaults] preset < [defaults] keys < material preset < material
  keys < command-line flags (which apply to every material). The whole file is checked
  first: an unknown key, a wrong type or value, or a missing folder is one line naming
  the file and key, exit code 2, nothing baked.
  A material is skipped ("up to date") when its .igs was baked from the same map bytes,
  effective settings and igs-tex version (recorded in its .json); --force re-bakes.
  Prints baked / up to date / failed: reason per material and a summary. A failing
  material does not stop the others; the exit code is then 2 (bad input) or 1 (a bug).
  -j N bakes N materials at once in worker processes; on the CPU the bytes are the same
  as with -j 1. The default is 1 because one bake already uses every core; -j > 1 helps
  many small materials, where per-step overhead leaves cores idle.
  Two materials that would write the same file are an error before anything is baked.
""".format(bppc=DEFAULT_BPPC)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="igs-tex",
        description=_DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=f"igs-tex {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    b = sub.add_parser(
        "bake",
        help="fit a material folder (or every material of pipeline.toml) into .igs files",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_BAKE_DESCRIPTION,
        epilog=EXIT_CODES,
    )
    b.add_argument(
        "material",
        type=Path,
        nargs="?",
        help="material folder; leave out to bake the project in ./pipeline.toml (or --config)",
    )
    b.add_argument(
        "--config", type=Path, metavar="TOML", help="bake every [[material]] of this project file instead of one folder"
    )
    b.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output folder (default: .), or for one material a file name ending in .igs "
        "(its .json goes beside it); with a project file, a folder that replaces every "
        "material's 'output'",
    )
    g = b.add_mutually_exclusive_group()
    g.add_argument(
        "--bppc",
        type=float,
        help=f"bits per pixel per channel of the Gaussian parameters (default {DEFAULT_BPPC}, the paper's rate)",
    )
    g.add_argument("--gaussians", type=int, help="number of Gaussians")
    g.add_argument("--kib", type=float, help="size of the Gaussian parameters in KiB")
    b.add_argument("--preset", choices=list(PRESETS), help=f"bake effort, never the size: {PRESET_HELP}")
    b.add_argument("--steps", type=int, help=f"optimisation steps (default {DEFAULT_STEPS}; beats --preset)")
    b.add_argument(
        "--seed", type=int, help=f"random seed; same inputs+settings+seed give identical bytes (default {DEFAULT_SEED})"
    )
    r_ = b.add_mutually_exclusive_group()
    r_.add_argument(
        "--device",
        choices=list(DEVICES),
        help="where to train: cpu = the native C++ kernels (all cores) when built, else "
        "the torch reference (the default: bit-reproducible); cuda = the CUDA kernels on an "
        "NVIDIA GPU, an error saying why when there is none (gradients are summed with "
        "atomics, so bytes may differ from run to run); auto = cuda when available, else cpu",
    )
    r_.add_argument(
        "--backend",
        choices=["auto", "torch", "native", "cuda"],
        help="renderer by name, for testing and benchmarks: auto (= --device cpu), torch reference, native C++, cuda",
    )
    b.add_argument("-k", "--topk", type=int, help=f"Gaussians blended per texel, K (default {DEFAULT_K})")
    b.add_argument(
        "--max-scale",
        type=float,
        metavar="PX",
        help="longest Gaussian standard deviation in texels; smaller keeps the tile index "
        f"and the per-texel work small (default {DEFAULT_MAX_SCALE:g}; 0 = no cap)",
    )
    b.add_argument(
        "--tile",
        type=int,
        metavar="T",
        help="tile size in texels, stored in the file; every texel blends only its tile's "
        "list, so T trades file size and the largest Gaussian against per-texel work. Default 0 = "
        "from the budget: 32 where Gaussians are sparse (mean spacing >= 12 texels, e.g. 0.059 "
        "bppc), else 16. Version 2 files scan the home tiles within a reach R of the texel's "
        "tile, with R * T > 3 * --max-scale; the CUDA trainer takes tiles up to 32",
    )
    b.add_argument(
        "--format",
        type=int,
        choices=[1, 2],
        dest="format",
        help="the .igs version written (default 2: bit-packed records and no tile index, "
        "docs/FORMAT-v2.md; 1: 16-bit records and a tile index, docs/FORMAT.md). Every "
        "budget counts the whole file either way; version 1 bakes estimate their index",
    )
    b.add_argument("--name", help="output base name (default: the folder name; one material only)")
    b.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="project bakes: materials baked at once in worker processes (default 1, or "
        "'jobs' in [defaults]); see above",
    )
    b.add_argument("--force", action="store_true", help="project bakes: re-bake materials that are up to date")
    b.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads to compute with (default: every core): torch's and the native "
        "kernels'; with -j, the native ones are shared out among the workers. The bytes do "
        "not depend on it, except with --backend torch",
    )
    b.add_argument("-q", "--quiet", action="store_true", help="print only errors: no progress, no summary")

    d = sub.add_parser(
        "decode",
        help="decode a .igs back to texture maps",
        description="Decode a .igs into maps named like the baked inputs.",
    )
    d.add_argument("file", type=Path, help=".igs file")
    d.add_argument("-o", "--output", type=Path, default=Path("."), help="output folder (default: .)")
    d.add_argument(
        "--format",
        choices=["auto", "png8", "png16", "exr"],
        default="auto",
        help="auto: same kind and bit depth as each input map",
    )

    i = sub.add_parser(
        "inspect",
        help="print header, channels, sizes and tile statistics",
        description="Validate a .igs file and print what it holds.",
    )
    i.add_argument("file", type=Path, help=".igs file")
    i.add_argument("--json", action="store_true", help="machine-readable output")

    r = sub.add_parser(
        "report",
        help="compare igs-tex with BCn/ASTC at several rates (HTML + Markdown)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Bake the material with igs-tex at each rate, run the block-compression\n"
        "baselines at each mip level (lower levels upsampled bilinearly to full size), score\n"
        "everything with the same metrics and write OUT/index.html (plots, error maps, zoomed\n"
        "crops, tables), OUT/report.md and OUT/results.json. Prints the path of index.html.",
    )
    r.add_argument("material", type=Path, help="material folder")
    r.add_argument("-o", "--output", type=Path, default=Path("report"), help="output folder (default: report)")
    r.add_argument(
        "--rates",
        default="0.03,0.06,0.12,0.25",
        help="igs-tex bppc targets, comma-separated (default 0.03,0.06,0.12,0.25)",
    )
    r.add_argument("--steps", type=int, default=None, help="optimisation steps per bake (default: as bake)")
    r.add_argument(
        "--codecs",
        default="bc1,bc7,astc4x4,astc6x6,astc8x8,astc12x12",
        help="baselines, comma-separated: bc1, bc1-bc4, bc7, bc7-bc4, astcWxH "
        "(default bc1,bc7,astc4x4,astc6x6,astc8x8,astc12x12)",
    )
    r.add_argument("--mips", default="0,1,2,3", help="baseline mip levels, comma-separated (default 0,1,2,3)")
    r.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed of the bakes (default {DEFAULT_SEED})")
    r.add_argument(
        "--backend",
        choices=["auto", "torch", "native", "cuda"],
        default="auto",
        help="renderer for training (default auto)",
    )
    r.add_argument(
        "-k", "--topk", type=int, default=DEFAULT_K, help=f"Gaussians blended per texel, K (default {DEFAULT_K})"
    )
    return ap


def _fmt_db(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:6.2f}"


def _bake_cli_settings(a) -> dict:
    return {
        "bppc": a.bppc,
        "kib": a.kib,
        "gaussians": a.gaussians,
        "preset": a.preset,
        "steps": a.steps,
        "seed": a.seed,
        "k": a.topk,
        "max_scale": a.max_scale,
        "tile": a.tile,
        "format": a.format,
        "device": a.device,
        "backend": a.backend,
    }


def _set_threads(a) -> None:
    if a.threads is not None:
        from .config import check_value
        from .render.native import set_cpu_threads

        set_cpu_threads(check_value("threads", a.threads, "--threads"))


def _cmd_bake(a) -> int:
    if a.material is None:
        return _bake_project(a)
    for flag, given in (("--config", a.config is not None), ("-j/--jobs", a.jobs is not None), ("--force", a.force)):
        if given:
            raise IgsError(f"{flag} applies to project bakes (no FOLDER argument); a single material is always baked")
    from .bakes.material import BakeOptions, bake_material
    from .bakes.project import resolve_backend
    from .config import cli_layer, merge_settings

    st = merge_settings(cli_layer(_bake_cli_settings(a)))
    from .material import describe_maps, discover_maps

    map_lines = describe_maps(*discover_maps(a.material))  # printed once the bake has succeeded
    _set_threads(a)
    s = bake_material(
        a.material,
        a.output or Path("."),
        BakeOptions.from_settings(st, resolve_backend(st), a.name),
        progress=not a.quiet,
    )
    if a.quiet:
        return EXIT_OK
    for line in map_lines:
        print(f"map {line}", file=sys.stderr)
    size = s["size"]
    print(
        f"wrote {s['output']}: {s['width']}x{s['height']}x{len(s['channels'])}, "
        f"{s['gaussians']} Gaussians, {size['total_bytes'] / 1024:.1f} KiB, "
        f"{size['bppc']:.4f} bppc (the file; parameters {size['bppc_params']:.4f}), "
        f"{s['total_seconds']:.1f} s ({s['backend']})"
    )
    print(f"{'group':<10} {'PSNR dB':>8} {'SSIM':>7}")
    for name, m in s["metrics"].items():
        print(f"{name:<10} {_fmt_db(m['psnr']):>8} {m['ssim']:7.4f}")
    return EXIT_OK


def _bake_project(a) -> int:
    from .bakes.project import bake_all, exit_status
    from .config import load_project

    toml = a.config
    if toml is None:
        toml = Path("pipeline.toml")
        if not toml.is_file():
            raise IgsError(
                "no material folder given and no pipeline.toml here; "
                "give a FOLDER or --config TOML (igs-tex bake --help)"
            )
    if a.name is not None:
        raise IgsError("--name applies to one material; set 'name' in a [[material]] entry instead")
    if a.output is not None and a.output.suffix.lower() == ".igs":
        raise IgsError(f"-o {a.output}: a project bake writes one .igs per material; give a folder")
    project = load_project(toml, _bake_cli_settings(a), cli_output=a.output, cli_jobs=a.jobs)
    _set_threads(a)
    outcomes = []
    total = len(project.materials)
    for o in bake_all(
        project.materials,
        workers=project.jobs,
        force=a.force,
        progress=not a.quiet and project.jobs <= 1,
        threads=a.threads,
    ):
        outcomes.append(o)
        head = f"[{len(outcomes)}/{total}] {o.job.source}"
        if a.quiet and o.status != "failed":
            continue
        if o.status == "baked":
            s = o.summary
            print(
                f"{head}: baked -> {s['output']}, {s['gaussians']} Gaussians, "
                f"{s['size']['total_bytes'] / 1024:.1f} KiB, PSNR {_fmt_db(s['metrics']['all']['psnr']).strip()} dB, "
                f"{s['total_seconds']:.1f} s ({s['backend']})",
                flush=True,
            )
        elif o.status == "up to date":
            print(f"{head}: up to date ({o.job.igs_path})", flush=True)
        else:
            print(f"{head}: failed: {o.error}", flush=True)
            if o.traceback:
                print(o.traceback, file=sys.stderr, end="", flush=True)
    counts = {k: sum(o.status == k for o in outcomes) for k in ("baked", "up to date", "failed")}
    if not a.quiet:
        print(
            f"{toml}: {total} material{'s' if total != 1 else ''}: " + ", ".join(f"{n} {k}" for k, n in counts.items())
        )
    return exit_status(outcomes)


def _cmd_decode(a) -> int:
    from .igsfile import read_igs
    from .material import MapSource, save_maps
    from .render.decode import decode_stack

    igs = read_igs(a.file)
    try:
        maps = [MapSource.from_dict(m) for m in igs.metadata.get("maps", [])]
    except IgsError as e:
        raise IgsError(f"{a.file}: {e}") from None
    if not maps:
        raise IgsError(f"{a.file}: no map list in the metadata; cannot name the outputs")
    data = decode_stack(igs)
    a.output.mkdir(parents=True, exist_ok=True)
    paths = save_maps(data, igs.channels, igs.value_range, maps, a.output, fmt=a.format)
    for p in paths:
        print(f"wrote {p}")
    return EXIT_OK


def _cmd_inspect(a) -> int:
    from .atomic import json_text
    from .igsfile import read_igs

    igs = read_igs(a.file)
    counts = igs.tile_offsets[1:].astype("int64") - igs.tile_offsets[:-1].astype("int64")
    info = {
        "file": str(a.file),
        "version": igs.version,
        "width": igs.width,
        "height": igs.height,
        "channels": igs.channels,
        "tile": igs.tile,
        "k": igs.k,
        "eps": igs.eps,
        "gaussians": igs.gaussian_count,
        "tiles": int(counts.size),
        "tile_list_entries": int(counts.sum()),
        "per_tile": {
            "min": int(counts.min()),
            "mean": float(counts.mean()),
            "max": int(counts.max()),
            "empty": int((counts == 0).sum()),
            "over_k": int((counts > igs.k).sum()),
        },
        "size": igs.size_report(),
        "metadata": igs.metadata,
    }
    if igs.version == 1:
        info["index_bits"] = igs.index_bits
    else:
        L = igs.layout
        info["reach"] = igs.reach
        info["record"] = {
            "bits": L.record_bits,
            "mean_bits": L.mean_bits,
            "theta_bits": L.theta_bits,
            "scale_exp_bits": L.scale_exp_bits,
            "scale_mant_bits": L.scale_mant_bits,
            "scale_exp_min": L.scale_exp_min,
            "colour_bits": list(L.colour_bits),
            "offset_bits": igs.offset_bits,
        }
    if a.json:
        print(json_text(info, indent=2))
        return EXIT_OK
    sz = info["size"]
    reach = f", reach R={igs.reach}" if igs.version == 2 else ""
    print(
        f"{a.file}: igs v{igs.version}, {igs.width}x{igs.height}, {len(igs.channels)} channels, "
        f"T={igs.tile}, K={igs.k}, eps={igs.eps:g}{reach}"
    )
    print(f"  channels   {', '.join(igs.channels)}")
    if igs.version == 1:
        print(f"  gaussians  {igs.gaussian_count} ({igs.words.shape[1]} words each)")
        index = f"tile indices {sz['tile_indices_bytes']} ({igs.index_bits}-bit)"
    else:
        r = info["record"]
        print(
            f"  gaussians  {igs.gaussian_count} ({r['bits']} bits each: means {r['mean_bits']}+{r['mean_bits']}, "
            f"theta {r['theta_bits']}, scales 2x{r['scale_exp_bits'] + r['scale_mant_bits']}, "
            f"colours {'+'.join(map(str, r['colour_bits']))})"
        )
        index = f"no tile index ({r['offset_bits']}-bit offsets)"
    print(
        f"  size       {sz['total_bytes']} bytes: gaussians {sz['gaussian_bytes']}, "
        f"tile offsets {sz['tile_offsets_bytes']}, {index}, header {sz['header_bytes']}, "
        f"metadata {sz['metadata_bytes']}"
    )
    print(
        f"  bppc       {sz['bppc']:.4f} the file (metadata text of {sz['metadata_bytes']} bytes left out), "
        f"{sz['bppc_params']:.4f} parameters only, {sz['bppc_total']:.4f} every byte"
    )
    pt = info["per_tile"]
    print(
        f"  tiles      {info['tiles']}, {info['tile_list_entries']} list entries; per tile min {pt['min']}, "
        f"mean {pt['mean']:.1f}, max {pt['max']}; {pt['empty']} empty, {pt['over_k']} with more than K"
    )
    name = igs.metadata.get("name")
    if name:
        print(f"  material   {name}")
    return EXIT_OK


def _cmd_report(a) -> int:
    from .bakes.comparison import parse_list, run_comparison
    from .report.html import write_report

    rates = parse_list("--rates", a.rates, float)
    codecs = parse_list("--codecs", a.codecs, str.lower)
    mips = parse_list("--mips", a.mips, int)
    c = run_comparison(
        a.material,
        a.output,
        rates=rates,
        steps=a.steps,
        codecs=codecs,
        mips=mips,
        seed=a.seed,
        backend=a.backend,
        k=a.topk,
    )
    index = write_report(c, a.output)
    print(index)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    a = ap.parse_args(argv)
    if a.command is None:
        ap.print_help()
        return EXIT_USAGE
    try:
        return {"bake": _cmd_bake, "decode": _cmd_decode, "inspect": _cmd_inspect, "report": _cmd_report}[a.command](a)
    except IgsError as e:
        print(f"igs-tex {a.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"igs-tex {a.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
