"""Bake many materials: device -> renderer, up-to-date stamps, worker processes.

A bake is recorded in its JSON sidecar as "stamp": {"key", "igs_sha256"}. The key hashes the
input map files (names and bytes), the effective settings (with the renderer actually used)
and the igs-tex version; the .igs hash catches an output replaced or damaged since. A material
is up to date when both still match, so an edited map, a changed setting or a new igs-tex
re-bakes it and nothing else does.
"""

from __future__ import annotations

import hashlib
import json
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .. import IgsError, __version__
from ..config import BakeSettings, MaterialJob
from ..material import map_kind


def resolve_backend(settings: BakeSettings) -> str:
    """The renderer a bake will use, as get_renderer names it: native, torch or cuda.

    device cpu -> native when the C++ extension is built, else torch; cuda -> the CUDA
    renderer or an error saying why not; auto -> cuda when it is available, else cpu.
    """
    where = settings.origins.get("renderer", "--device")
    value = settings.renderer
    if settings.renderer_key == "backend":
        if value == "auto":
            return _cpu_backend()
        if value == "native" and _cpu_backend() != "native":
            from ..render.native import native_unavailable_reason

            raise IgsError(
                f'{where}: native is unavailable: {native_unavailable_reason()}; use device "cpu" or backend "torch"'
            )
        if value == "cuda":
            _require_cuda(where)
        return value
    if value == "cpu":
        return _cpu_backend()
    if value == "cuda":
        _require_cuda(where)
        return "cuda"
    from ..render.cuda import cuda_available

    return "cuda" if cuda_available() else _cpu_backend()


def _cpu_backend() -> str:
    from ..render.native import native_available

    return "native" if native_available() else "torch"


def _require_cuda(where: str) -> None:
    from ..render.cuda import cuda_available, cuda_unavailable_reason

    if not cuda_available():
        raise IgsError(f"{where}: cuda is unavailable: {cuda_unavailable_reason()}")


def input_files(source: Path) -> list[Path]:
    """The files a bake of `source` reads: the recognised maps of a folder, or the one file."""
    if not source.is_dir():
        return [source]
    try:
        return sorted(p for p in source.iterdir() if p.is_file() and map_kind(p.name) is not None)
    except OSError as e:
        raise IgsError(f"{source}: cannot list folder ({e.strerror or e})") from None


def stamp_key(job: MaterialJob, backend: str) -> str:
    s = job.settings
    h = hashlib.sha256()
    for f in input_files(job.source):
        try:
            data = f.read_bytes()
        except OSError as e:
            raise IgsError(f"{f}: cannot read ({e.strerror or e})") from None
        h.update(json.dumps([f.name, hashlib.sha256(data).hexdigest()]).encode())
    # Only what reaches the .igs bytes: preset, output folder and jobs do not.
    settings = {
        "budget": [s.budget_key, s.budget],
        "steps": s.steps,
        "seed": s.seed,
        "k": s.k,
        "max_scale": s.max_scale,
        "backend": backend,
        "name": job.stem,
        "tile": s.tile,
        "format": s.format,
        "igs_tex": __version__,
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def is_up_to_date(job: MaterialJob, key: str) -> bool:
    try:
        stamp = json.loads(job.igs_path.with_suffix(".json").read_text())["stamp"]
        return stamp["key"] == key and stamp["igs_sha256"] == hashlib.sha256(job.igs_path.read_bytes()).hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        return False


@dataclass
class Outcome:
    job: MaterialJob
    status: str  # "baked" | "up to date" | "failed"
    summary: dict | None = None  # bakes.material.bake_material's, when baked
    error: str | None = None  # one line, when failed
    traceback: str | None = None  # when the failure was a bug rather than bad input


def bake_job(job: MaterialJob, backend: str, key: str, progress: bool) -> Outcome:
    from .material import BakeOptions, bake_material

    try:
        summary = bake_material(
            job.source,
            job.igs_path,
            BakeOptions.from_settings(job.settings, backend, job.name),
            progress=progress,
            stamp=key,
        )
    except IgsError as e:
        return Outcome(job, "failed", error=str(e))
    except Exception as e:  # one broken material must not stop the rest; the traceback is kept
        return Outcome(
            job, "failed", error=f"internal error: {type(e).__name__}: {e}", traceback=traceback.format_exc()
        )
    return Outcome(job, "baked", summary=summary)


def _worker_init(threads: int, torch_threads: int | None) -> None:
    # N workers each running kernels on every core only fight over them; the native kernels
    # give the same bytes for any thread count (native/cpu/kernels.h). torch's own pool keeps
    # the count of a -j 1 bake (its reductions are not promised to be thread-count
    # independent): every core, or --threads when given.
    from ..render.native import native_available

    if native_available():
        from .. import _native

        _native.set_num_threads(threads)
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def bake_all(
    jobs: list[MaterialJob], *, workers: int = 1, force: bool = False, progress: bool = True, threads: int | None = None
) -> Iterator[Outcome]:
    """Yield one Outcome per job: up-to-date ones first, then bakes as they finish.

    Renderers are resolved for every job before anything is baked, so an unavailable device
    is one IgsError up front rather than a failure per material. threads: the CPU threads of
    all workers together (default: every core), shared out evenly.
    """
    backends = [resolve_backend(j.settings) for j in jobs]
    todo: list[tuple[MaterialJob, str, str]] = []
    for job, backend in zip(jobs, backends):
        try:
            key = stamp_key(job, backend)
        except IgsError as e:
            yield Outcome(job, "failed", error=str(e))
            continue
        if not force and is_up_to_date(job, key):
            yield Outcome(job, "up to date")
        else:
            todo.append((job, backend, key))

    if workers <= 1 or len(todo) <= 1:
        for job, backend, key in todo:
            yield bake_job(job, backend, key, progress)
        return

    import multiprocessing

    n = min(workers, len(todo))
    # spawn, not fork: a forked child inherits torch's and OpenMP's thread pools mid-state.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        n, mp_context=ctx, initializer=_worker_init, initargs=(max(1, (threads or _cpu_count()) // n), threads)
    ) as pool:
        futures = {pool.submit(bake_job, job, backend, key, False): job for job, backend, key in todo}
        try:
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    yield Outcome(
                        futures[fut],
                        "failed",
                        error="internal error: the worker process died (out of memory or a crash)",
                    )
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def exit_status(outcomes: list[Outcome]) -> int:
    """0 all good; 2 some material had bad input (one line each); 1 some failure was a bug."""
    failed = [o for o in outcomes if o.status == "failed"]
    if not failed:
        return 0
    return 1 if any(o.traceback for o in failed) else 2
