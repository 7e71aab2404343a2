"""Command line of the model files: ``python -m callagent.modelfiles --help``.

``scripts/download_models.sh`` runs it (``download``) before callagent is installed, so it
imports nothing beyond this package and the standard library.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from callagent.modelfiles.download import WHEELS_DIR_NAME, download
from callagent.modelfiles.manifest import KINDS, Manifest, ModelFileError, load_manifest
from callagent.modelfiles.verify import (
    _file_problem,
    _mb,
    _sha256_file,
    _Stamps,
    verify_profiles,
)


def _profiles_arg(values: Sequence[str] | None) -> list[str]:
    names = [name for value in values or ["ci"] for name in value.split(",") if name]
    return list(dict.fromkeys(names))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m callagent.modelfiles",
        description="Download and verify the model files named in models/manifest.json.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--models-dir", type=Path, default=Path("models"), help="folder of the model files"
    )
    common.add_argument(
        "--manifest", type=Path, default=None, help="manifest (default: MODELS_DIR/manifest.json)"
    )
    profile_help = "profile to act on, repeatable or comma-separated; 'all' = every model"
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("download", parents=[common], help="fetch missing or corrupt files")
    fetch.add_argument("--profile", action="append", help=profile_help + " (default: ci)")
    fetch.add_argument(
        "--wheelhouse", type=Path, default=None, help="take the wheels from this folder only"
    )
    fetch.add_argument(
        "--keep-wheels",
        action="store_true",
        help=f"keep the wheels in MODELS_DIR/{WHEELS_DIR_NAME}",
    )

    check = sub.add_parser("verify", parents=[common], help="check files (sha256 by default)")
    check.add_argument("--profile", action="append", help=profile_help + " (default: ci)")
    check.add_argument("--quick", action="store_true", help="check existence and size only")

    sub.add_parser("list", parents=[common], help="list the profiles and models")

    requirements = sub.add_parser(
        "requirements",
        parents=[common],
        help="print the pinned packages of profiles (to fill a wheelhouse with pip download -r)",
    )
    requirements.add_argument("--profile", action="append", help=profile_help + " (default: ci)")

    describe = sub.add_parser(
        "describe", help="print a manifest file entry (size, sha256, source.path) for a local file"
    )
    describe.add_argument("file", type=Path)
    describe.add_argument("--dest", help="path under models/ (default: the file's name)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (``download``, ``verify``, ``list``, ``requirements``, ``describe``).

    Returns the process exit code: 0 on success, 1 with the reason on stderr.
    """
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "download":
            download(
                _profiles_arg(args.profile),
                args.models_dir,
                wheelhouse=args.wheelhouse,
                keep_wheels=args.keep_wheels,
                manifest_path=args.manifest,
            )
        elif args.command == "verify":
            profiles = verify_profiles(
                _profiles_arg(args.profile),
                args.models_dir,
                verify=True if args.quick else "full",
                manifest_path=args.manifest,
            )
            for profile in profiles:
                print(
                    f"{profile.name}: ok\n  stt {profile.stt_model}: {profile.stt_dir}\n"
                    f"  llm {profile.llm_model}: {profile.llm_path}\n"
                    f"  tts {profile.tts_voice}: {profile.tts_model}"
                )
        elif args.command == "requirements":
            manifest = load_manifest(args.models_dir, manifest_path=args.manifest)
            models = manifest.models_for(_profiles_arg(args.profile))
            pins = [part.requirement for m in models for spec in m.files for part in spec.parts]
            print("\n".join(dict.fromkeys(pins)))
        elif args.command == "list":
            _print_listing(load_manifest(args.models_dir, manifest_path=args.manifest), args)
        else:
            file: Path = args.file
            entry = {
                "path": args.dest or file.name,
                "size": file.stat().st_size,
                "sha256": _sha256_file(file),
                "source": {"path": str(file.resolve())},
            }
            print(json.dumps(entry, indent=2))
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_listing(manifest: Manifest, args: argparse.Namespace) -> None:
    stamps = _Stamps(args.models_dir)
    for name, kinds in manifest.profiles.items():
        description = manifest.profile_descriptions.get(name, "")
        print(f"profile {name}: " + ", ".join(f"{k}={kinds[k]}" for k in KINDS))
        if description:
            print(f"    {description}")
    for model in manifest.models.values():
        size = sum(spec.size for spec in model.files)
        present = all(
            _file_problem(spec, args.models_dir, stamps, full=False) is None for spec in model.files
        )
        state = "present" if present else "missing"
        print(f"model {model.name} [{model.kind}] {_mb(size)} {state}: {model.description}")
