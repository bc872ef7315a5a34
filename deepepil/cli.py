"""The ``deepepil`` command.

Run ``deepepil --help`` or ``deepepil COMMAND --help``. Errors print one clear line
(what was wrong, what is allowed, what to do next) and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]


def _cmd_synth(args: argparse.Namespace) -> int:
    from deepepil.synthetic.cohort import synthesize_cohort

    paths = synthesize_cohort(
        args.out_dir, patients=args.patients, seconds=args.seconds, seed=args.seed, size=args.size,
        recordings_per_patient=args.recordings_per_patient, formats=tuple(args.formats),
        progress=not args.quiet,
    )
    for p in paths:
        print(p)
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from deepepil.recordings.ingest import ingest, ingest_many
    from deepepil.recordings.store import StoreLayout

    layout = StoreLayout(rgb_quality=args.rgb_quality, frames_per_shard=args.frames_per_shard)
    kwargs = {"reader": args.reader, "layout": layout, "streams": args.streams}
    if len(args.sources) > 1 or args.scheduler or args.workers:
        if args.name:
            raise SystemExit("error: --name applies to a single source only")
        paths = ingest_many(
            args.sources, args.store, scheduler_address=args.scheduler, n_workers=args.workers,
            progress=not args.quiet, **kwargs,
        )
    else:
        paths = [ingest(args.sources[0], args.store, name=args.name, progress=not args.quiet, **kwargs)]
    for p in paths:
        print(p)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from deepepil.recordings.store import verify

    status = 0
    for path in args.paths:
        report = verify(path, decode=args.decode)
        print(report)
        status |= 0 if report.ok else 1
    return status


def _cmd_info(args: argparse.Namespace) -> int:
    from deepepil.recordings.store import open_recording, recording_summary

    for i, path in enumerate(args.paths):
        if i:
            print()
        print(recording_summary(open_recording(path)))
    return 0


def _cmd_readers(args: argparse.Namespace) -> int:
    from deepepil.recordings.readers import list_readers

    for name, reader in list_readers().items():
        print(f"{name:<14} {reader.description}  [{type(reader).__module__}.{type(reader).__name__}]")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from deepepil.demo import run_demo

    return run_demo(
        Path(args.dir), port=args.port, patients=args.patients, seconds=args.seconds,
        size=args.size, open_lab=not args.no_lab,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``deepepil`` command."""
    parser = argparse.ArgumentParser(
        prog="deepepil", description="Label 3D seizure video and train deep models on the labels.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="generate a synthetic patient cohort in acquisition formats")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--patients", type=int, default=2, help="number of patients (default 2)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each recording (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same data (default 0)")
    p.add_argument("--size", choices=("tiny", "small", "full"), default="small",
                   help="tiny (tests), small (demo), full (RGB 1920x1080, IR/depth 512x424)")
    p.add_argument("--recordings-per-patient", type=int, default=1)
    p.add_argument("--formats", nargs="+", choices=("mkv", "folder"), default=["mkv", "folder"],
                   help="acquisition formats to write (default both)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("ingest", help="ingest recordings into a Zarr recording store")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="MKV, video file, frame folder or .npz/.npy folder")
    p.add_argument("--store", required=True, metavar="DIR", help="folder holding recording stores")
    p.add_argument("--name", help="recording name (default: source file stem)")
    p.add_argument("--reader", help="reader to use (see `deepepil readers`); default: guessed")
    p.add_argument("--streams", nargs="+", choices=("rgb", "ir", "depth"),
                   help="ingest only these streams (default: all the source has)")
    p.add_argument("--rgb-quality", type=int, default=90, help="JPEG quality for RGB, 1-100 (default 90)")
    p.add_argument("--frames-per-shard", type=int, default=32, help="frames per shard file (default 32)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address for many recordings")
    p.add_argument("--workers", type=int, help="local Dask workers (default: one per core)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("verify", help="check recording stores against their checksum manifests")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--decode", action="store_true", help="also decode every frame (slow)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("info", help="print a summary of recording stores")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("readers", help="list the installed reader plugins")
    p.set_defaults(func=_cmd_readers)

    p = sub.add_parser("demo", help="generate and ingest a synthetic cohort, then start JupyterLab")
    p.add_argument("--dir", default="demo-data", help="working folder (default ./demo-data)")
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--patients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--size", choices=("tiny", "small", "full"), default="small")
    p.add_argument("--no-lab", action="store_true", help="prepare the data but do not start JupyterLab")
    p.set_defaults(func=_cmd_demo)
    return parser


def _version() -> str:
    from deepepil import __version__

    return f"deepepil {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepepil`` command; returns the exit status."""
    from deepepil.errors import DeepEpilError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DeepEpilError, FileNotFoundError, FileExistsError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"deepepil {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deepepil {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
