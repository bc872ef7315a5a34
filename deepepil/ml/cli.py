"""The ``deepepil train`` and ``deepepil predict`` commands.

``deepepil/cli.py`` adds them with :func:`add_parser`; nothing here imports torch or MLflow
until a command runs, so ``deepepil --help`` stays quick.

    deepepil train CONFIG.yaml [--resume [RUN_DIR]] [--set train.epochs=5 ...]
    deepepil predict --model NAME@ALIAS --recording ID [ID ...] [--threshold 0.5] [--scheduler ADDR] [--explain DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "cmd_train", "cmd_predict"]


def _override(text: str) -> tuple[str, Any]:
    import yaml

    from deepepil.errors import ConfigError

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set takes SECTION.KEY=VALUE (e.g. train.epochs=5), got {text!r}")
    return key.strip(), yaml.safe_load(value)


def cmd_train(args: argparse.Namespace) -> int:
    """``deepepil train``: load the configuration, apply ``--set``, train; print the results."""
    from deepepil.ml.config import load_config
    from deepepil.ml.training import train

    config = load_config(args.config)
    if args.set:
        config = config.replace(**dict(_override(s) for s in args.set))
    result = train(config, resume=args.resume, progress=not args.quiet)
    print(f"run folder: {result.run_dir}")
    if result.run_id:
        print(f"MLflow run: {result.run_id} ({result.tracking_uri})")
    if result.evaluation is not None:
        import pandas as pd

        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(result.folds.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            print(result.overall.to_string(float_format=lambda v: f"{v:.3f}"))
    if result.registered is not None:
        print(f"registered model: {result.registered.label}"
              + (f" (alias @{result.registered.alias})" if result.registered.alias else ""))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """``deepepil predict``: one recording here, several on Dask (``--scheduler`` for a running cluster)."""
    from deepepil.ml.inference import predict, predict_many

    ids = list(dict.fromkeys(args.recording))
    if len(ids) == 1 and args.scheduler is None:
        p = predict(args.model, ids[0], args.url, user=args.user, tracking_uri=args.tracking_uri,
                    threshold=args.threshold, publish=not args.dry_run, device=args.device,
                    explain_dir=args.explain)
        print(f"recording {p.recording_id}: {len(p.windows)} windows, {len(p.suggestions)} suggestion(s) from "
              f"{p.model_version}" + ("" if args.dry_run else f" ({p.added} added, {p.existing} there already)"))
        if len(p.suggestions):
            columns = [c for c in ("id", "region", "label", "laterality", "start_frame", "end_frame", "score")
                       if c in p.suggestions.columns]
            print(p.suggestions[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if args.explain:
            uris = [u for u in p.suggestions["explanation_uri"] if isinstance(u, str)]
            folders = sorted({str(Path(u).parent) for u in uris})
            print(f"explanations: {len(uris)} of {len(p.suggestions)} suggestion(s) have one"
                  + (f", in {', '.join(folders)}" if folders else ""))
        return 0
    if args.dry_run:
        from deepepil.errors import ValidationError

        raise ValidationError("--dry-run works on one recording; give one --recording")
    table = predict_many(args.model, ids, args.url, user=args.user, tracking_uri=args.tracking_uri,
                         threshold=args.threshold, scheduler_address=args.scheduler, n_workers=args.workers,
                         device=args.device, progress=not args.quiet, explain_dir=args.explain)
    print(table.to_string(index=False))
    return 0


def add_parser(subparsers: Any) -> None:
    """Add ``train`` and ``predict`` to the ``deepepil`` command's subparsers."""
    p = subparsers.add_parser("train", help="train and evaluate a video model from a YAML configuration",
                              description="Train and evaluate as CONFIG says (docs/ml.md lists every key); "
                                          "log the run to MLflow and register the final model.")
    p.add_argument("config", metavar="CONFIG", help="training configuration (YAML)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                   help="continue an interrupted run (its folder; default: the run of this configuration)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value, e.g. --set train.epochs=5 (repeatable; YAML values)")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per epoch")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("predict", help="publish a registered model's suggestions for recordings",
                              description="Slide a registered model over recordings and publish its "
                                          "suggestions in the label database.")
    p.add_argument("--model", required=True, metavar="NAME@ALIAS",
                   help="registered model: NAME@ALIAS (e.g. moi-i3d@production), NAME:VERSION or NAME")
    p.add_argument("--recording", required=True, type=int, nargs="+", metavar="ID", help="recording id(s)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability a window needs (default 0.5)")
    p.add_argument("--url", help="label database URL (default $DEEPEPIL_DATABASE_URL)")
    p.add_argument("--user", help="who publishes (a data scientist; default the current user)")
    p.add_argument("--tracking-uri", help="MLflow registry (default $MLFLOW_TRACKING_URI, else the local store)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler for many recordings (default: local)")
    p.add_argument("--workers", type=int, help="local Dask workers (default: one per core)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--explain", metavar="DIR",
                   help="save a Grad-CAM explanation of every new suggestion under DIR (a folder the clinicians' "
                        "servers can read, e.g. the hub's shared team folder) for the labeling app; 3D models "
                        "(i3d, r2plus1d) only")
    p.add_argument("--dry-run", action="store_true", help="compute and print, publish nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

