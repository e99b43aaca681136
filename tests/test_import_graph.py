"""The stages of igs_tex import one way (docs/DESIGN.md "Layout"): files -> material -> fit ->
.igs -> decoders -> metrics -> report. The stages never import the bake drivers (bakes/), the
report or the command line; the report only turns results into HTML, Markdown and plots, so it
imports no stage that computes them. Read from the source with ast, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "igs_tex"
STAGES = ("budget", "fit", "render", "codecs", "igsfile", "metrics", "material", "atomic")
DRIVERS = ("bakes", "report", "cli", "config")
# What the report may not reach into: everything that bakes, fits, decodes or measures.
NOT_FOR_REPORT = ("budget", "fit", "render", "codecs", "igsfile", "metrics", "material", "bakes", "cli", "config")


def module_of(path: Path, root: Path = PACKAGE) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """Modules of igs_tex that `path` imports (absolute and relative, at any depth of the file)."""
    tree = ast.parse(path.read_text(), str(path))
    me = module_of(path, root).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.removeprefix("igs_tex.") for a in node.names if a.name.startswith("igs_tex.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "igs_tex" or node.module.startswith("igs_tex.")):
                mod = node.module.removeprefix("igs_tex").lstrip(".")
            else:
                continue
            if mod:
                out.add(mod)
            # `from igs_tex import report` and `from .. import metrics` name modules too.
            for a in node.names:
                child = f"{mod}.{a.name}" if mod else a.name
                where = root / child.replace(".", "/")
                if where.is_dir() or where.with_suffix(".py").is_file():
                    out.add(child)
    return out


def top(mod: str) -> str:
    return mod.split(".")[0]


def arrows() -> list[tuple[str, str]]:
    return sorted((module_of(f), m) for f in PACKAGE.rglob("*.py") for m in imports(f))


def test_the_graph_is_read():
    graph = arrows()
    # Known arrows, so that a parser that sees nothing cannot pass the checks below.
    assert ("fit.trainer", "metrics") in graph
    assert ("bakes.material", "fit.colour_solve") in graph
    assert ("report.html", "report.comparison") in graph
    assert ("cli", "bakes.material") in graph


def test_stages_do_not_import_drivers_or_report():
    bad = [(a, b) for a, b in arrows() if top(a) in STAGES and top(b) in DRIVERS]
    assert not bad, f"a stage imports a bake driver, the report or the CLI: {bad}"


def test_report_imports_no_stage():
    bad = [(a, b) for a, b in arrows() if top(a) == "report" and top(b) in NOT_FOR_REPORT]
    assert not bad, f"the report reaches into a stage or a driver: {bad}"


def test_wrong_arrows_are_seen(tmp_path):
    """Relative, absolute and lazy imports of the report from a stage are all read as arrows."""
    root = tmp_path / "igs_tex"
    (root / "fit").mkdir(parents=True)
    (root / "report").mkdir()
    (root / "report" / "comparison.py").write_text("")
    f = root / "fit" / "trainer.py"
    f.write_text(
        "from ..report.comparison import IGS\n"
        "def later():\n    import igs_tex.bakes.material\n    from .. import report\n"
    )
    assert imports(f, root) >= {"report.comparison", "bakes.material", "report"}
