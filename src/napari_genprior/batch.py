"""Batches: one engine command over many images, in-process or on dask.distributed.

    napari-genprior dip denoise plate/*.tif -o clean/ [--workers 2 | --scheduler tcp://host:8786]

Every image is one task that reads its input and writes its outputs itself (atomically), so no
image passes through the client, a rerun skips what is done, one bad image does not stop the
others, and a worker that dies has its task run again elsewhere (the scheduler's own retries).
Each task runs the same code as a single-image command (the ``commands`` table the CLI hands in: dip, irn, glean) on a
copy of the arguments with that image's paths, so a seeded image gives the same output in a batch
as on its own (on the same device, with the same number of torch threads).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["Job", "expand_inputs", "is_batch", "plan_jobs", "run_batch", "run_job"]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
#: a folder with this suffix is one image (OME-Zarr), not a folder of images
ZARR = ".zarr"


def _is_image(p: Path) -> bool:
    s = p.suffix.lower()
    return (s in IMAGE_SUFFIXES and p.is_file()) or (s == ZARR and p.is_dir())


def _is_folder(p: Path) -> bool:
    return p.is_dir() and p.suffix.lower() != ZARR


def _output_name(image: Path) -> str:
    """An output keeps its input's name; an OME-Zarr input's output is a TIFF."""
    return f"{image.stem.removesuffix('.ome')}.tif" if image.suffix.lower() == ZARR else image.name


#: Options that name a file per image; in a batch each is a folder (see :func:`plan_jobs`).
_PER_IMAGE = ("uncertainty", "lr", "metadata", "reference", "mask")


def is_batch(args: argparse.Namespace) -> bool:
    """A batch: more than one input, a folder, a glob pattern, or a batch option (--workers,
    --scheduler, --overwrite). One plain file without them is a single-image run, as always."""
    specs = args.input
    if len(specs) > 1 or args.workers is not None or args.scheduler or args.overwrite:
        return True
    spec = specs[0]
    return _is_folder(Path(spec)) or (not Path(spec).exists() and any(c in spec for c in "*?["))


def expand_inputs(specs: list[str]) -> list[Path]:
    """Paths, glob patterns and folders (their images, not recursive) → image files, sorted within
    each spec, each file once. A spec that matches no image raises :class:`InputError`."""
    out: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if _is_folder(p):
            found = sorted(q for q in p.iterdir() if _is_image(q))
        elif p.exists():
            found = [p]
        else:
            found = sorted(Path(q) for q in glob.glob(spec) if _is_image(Path(q)))
        if not found:
            raise InputError(f"{spec}: no such file, and no .tif/.png/.jpg/.zarr images match it")
        out += [q for q in found if q not in out]
    return out


def _paired(folder: Path, image: Path) -> Path | None:
    """The file in ``folder`` that belongs to ``image``: the same name, the same stem with any image
    suffix, or ``<stem>_mask`` with any image suffix."""
    if (folder / image.name).is_file():
        return folder / image.name
    for stem in (image.stem, f"{image.stem}_mask"):
        for suffix in IMAGE_SUFFIXES:
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    return None


@dataclass
class Job:
    """One image of a batch: the command's arguments with this image's paths filled in."""

    command: str  # "dip", "irn" or "glean"
    args: dict[str, Any]
    input: str
    outputs: list[str]
    torch_threads: int | None = None
    error: str = ""  # set when the job cannot run (e.g. no mask for this image)
    name: str = ""


def _aux_name(command: str, option: str, image: Path, main_suffix: str) -> str:
    if option == "uncertainty":
        return f"{image.stem}_{command}_uncertainty.tif"
    if option == "lr":
        return f"{image.stem}_irn_lr{main_suffix}"
    return f"{image.stem}.json"  # metadata


def plan_jobs(args: argparse.Namespace, command: str) -> tuple[list[Job], Path]:
    """The jobs of a batch and its output folder.

    With a batch, ``-o`` is a folder: each output keeps its input's name. ``--uncertainty``,
    ``--lr`` and ``--metadata`` name folders too (``<stem>_dip_uncertainty.tif``,
    ``<stem>_irn_lr.<ext>``, ``<stem>.json``). ``--mask`` and ``--reference`` are one file for
    every image, or a folder holding one per image (see :func:`_paired`).
    """
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"-o {out_dir} is a file: with several inputs, -o is the output folder")
    if out_dir.suffix.lower() in IMAGE_SUFFIXES and not out_dir.exists():
        raise InputError(f"-o {out_dir} looks like a file name: with several inputs, -o is the output folder")
    images = expand_inputs(args.input)
    base = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    jobs = []
    for image in images:
        a = {**base, "input": image, "output": out_dir / _output_name(image), "quiet": True}
        outputs = [out_dir / _output_name(image)]
        error = ""
        for opt in _PER_IMAGE:
            value = base.get(opt)
            if value is None:
                continue
            value = Path(value)
            if opt in ("mask", "reference"):
                if value.is_dir():
                    pair = _paired(value, image)
                    if pair is None:
                        error = f"no {opt} for {image.name} in {value} (same name, or {image.stem}_mask.*)"
                    a[opt] = pair
                continue
            if value.exists() and not value.is_dir():
                raise InputError(f"--{opt} {value} is a file: in a batch it is a folder (one file per image)")
            a[opt] = value / _aux_name(command, opt, image, Path(_output_name(image)).suffix)
            if opt != "metadata":
                outputs.append(a[opt])
        threads = base.get("torch_threads")
        jobs.append(Job(command, a, str(image), [str(o) for o in outputs], threads, error, image.name))
    names = [j.name for j in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"two inputs share the name {dupes[0]}: their outputs would overwrite each other")
    return jobs, out_dir


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"in-process ({socket.gethostname()}, pid {os.getpid()})"


_MALLOC_TUNED = False


def _undo_dask_malloc_trim() -> None:
    """Give glibc's allocator back its defaults' speed in a dask worker process.

    dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes glibc's
    mmap threshold: every large tensor of every step is then mmap'd and unmapped again, and a DIP
    step in a worker was much slower than the same step alone (README, "Batches and clusters").
    Raising both thresholds in the running process (mallopt) restores the speed; the worker keeps
    its freed memory for the next step instead of returning it to the system.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
        libc.mallopt(m_trim_threshold, 1 << 30)
        libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest mmap threshold on 64-bit


def run_job(job: Job, commands: Mapping[str, Callable[[argparse.Namespace], int]]) -> dict[str, Any]:
    """Run one image of a batch where it is called (the client or a dask worker) with
    ``commands[job.command]`` (the CLI's single-image commands, handed in by the caller so that
    this module needs nothing above it); never raises for a bad image: the record says ``done`` or
    ``failed`` with the reason."""
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"input": job.input, "outputs": job.outputs, "worker": _worker_name()}
    if job.error:
        return {**rec, "status": "failed", "reason": job.error, "seconds": 0.0}
    threads = job.torch_threads
    on_worker = False
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_worker

        nthreads = get_worker().state.nthreads
        on_worker = True
    if on_worker:
        _undo_dask_malloc_trim()
        if threads is None:  # share the worker machine's cores among the worker's threads
            threads = max(1, (os.cpu_count() or 1) // max(1, nthreads))
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    ns = argparse.Namespace(**job.args)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            rc = commands[job.command](ns)
        status, reason = ("done", "") if rc == 0 else ("failed", f"exit status {rc}")
    except InputError as err:
        status, reason = "failed", str(err)
    except Exception as err:  # one image's failure must not stop the batch
        status, reason = "failed", f"{type(err).__name__}: {err}"
    rec.update(status=status, reason=" ".join(reason.split()), seconds=round(time.perf_counter() - t0, 3))
    rec["log"] = log.getvalue().strip()[-2000:]
    return rec


def _exists(job: Job) -> bool:
    return all(Path(o).exists() for o in job.outputs)


def run_batch(
    jobs: list[Job],
    out_dir: Path,
    commands: Mapping[str, Callable[[argparse.Namespace], int]],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    label: str = "batch",
    parameters: dict[str, Any] | None = None,
) -> int:
    """Run ``jobs``: in this process one after another (``workers`` and ``scheduler`` None), on a
    ``distributed.LocalCluster`` of ``workers`` processes with one thread each, or on the dask
    scheduler at ``scheduler``. Writes ``out_dir/batch.json``; returns 0 when every image is done or
    skipped, 1 when some failed."""
    from tqdm import tqdm

    from .io import write_text

    t_start = time.perf_counter()
    records: dict[int, dict[str, Any]] = {}
    todo = []
    for i, job in enumerate(jobs):
        if not overwrite and not job.error and _exists(job):
            records[i] = {"input": job.input, "outputs": job.outputs, "status": "skipped", "seconds": 0.0}
        else:
            todo.append(i)
    where = "in-process"
    bar = tqdm(total=len(jobs), desc=label, unit="image", disable=quiet, file=sys.stderr, dynamic_ncols=True)
    bar.update(len(records))
    if todo and workers is None and not scheduler:
        for i in todo:
            records[i] = run_job(jobs[i], commands)
            bar.update(1)
    elif todo:
        where = _run_on_dask(jobs, todo, records, bar, workers, scheduler, commands)
    bar.close()
    ordered = [records[i] for i in range(len(jobs))]
    counts = {s: sum(r["status"] == s for r in ordered) for s in ("done", "skipped", "failed")}
    failed = [r for r in ordered if r["status"] == "failed"]
    summary = {
        "command": label,
        "parameters": parameters or {},
        "where": where,
        "wall_time_s": round(time.perf_counter() - t_start, 3),
        **counts,
        "images": ordered,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "batch.json", json.dumps(summary, indent=2, default=str) + "\n")
    line = f"{label}: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
    if failed:
        line += " (" + "; ".join(f"{Path(r['input']).name}: {r['reason']}" for r in failed) + ")"
    print(f"{line}; details in {out_dir / 'batch.json'}")
    return 1 if failed else 0


def _run_on_dask(
    jobs: list[Job],
    todo: list[int],
    records: dict[int, dict[str, Any]],
    bar: Any,
    workers: int | None,
    scheduler: str | None,
    commands: Mapping[str, Callable[[argparse.Namespace], int]],
) -> str:
    """Submit ``todo`` to dask; fill ``records``. Returns a description of where it ran."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError(
            "--workers and --scheduler need dask.distributed: pip install 'napari-genprior[batch]'"
        ) from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as err:
            raise InputError(f"cannot reach the dask scheduler at {scheduler}: {err}") from None
        where = f"dask scheduler {scheduler}"
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0" if _has_bokeh() else None,
        )
        client = Client(cluster)
        where = f"LocalCluster of {workers} worker processes, 1 thread each"
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        for i in todo:  # the workers' cores are not oversubscribed: N workers share them
            if jobs[i].torch_threads is None:
                jobs[i].torch_threads = threads
    try:
        if client.dashboard_link and not bar.disable:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
        # Task keys carry the image's name: the dashboard shows which image each worker is on.
        keys = [f"genprior-{jobs[i].command}-{i}-{jobs[i].name}" for i in todo]
        # the command functions travel by reference (module and name): workers import the CLI
        futures = client.map(run_job, [jobs[i] for i in todo], key=keys, pure=False, commands=commands)
        index = {f.key: i for f, i in zip(futures, todo)}
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                records[i] = fut.result()
            except Exception as err:  # e.g. KilledWorker: the task killed worker after worker
                records[i] = {
                    "input": jobs[i].input,
                    "outputs": jobs[i].outputs,
                    "status": "failed",
                    "reason": f"{type(err).__name__}: {err}",
                    "seconds": 0.0,
                }
            bar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return where


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True
