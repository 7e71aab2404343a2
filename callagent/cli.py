"""The ``callagent`` command: serve the phone agent, try it with a simulated call, manage it.

This module only parses the command line and dispatches: the work, and the reading of the
settings, happen in the composition root, :mod:`callagent.app` (DESIGN.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callagent.app.asterisk_config import write_asterisk_config_files
from callagent.app.clients import run_clients_command
from callagent.app.errors import UsageError
from callagent.app.logs import configure_logging
from callagent.app.serve import serve
from callagent.app.simulate import run_call
from callagent.app.users import run_users_command
from callagent.diagnostics.selfcheck import EngineCheckError
from callagent.dialog.agent_profile import AgentProfileError
from callagent.modelfiles import ModelFileError
from callagent.settings import SettingsError, load_settings


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callagent", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="TOML config file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--agent", type=Path, help="agent definition (YAML or JSON)")
    common.add_argument("--models", help="model profile: ci, default or server")
    common.add_argument("--models-dir", type=Path, help="folder of the model files")

    serve = sub.add_parser("serve", parents=[common], help="run the agent")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--audiosocket-port", type=int, help="AudioSocket port (default 9092)")
    serve.add_argument("--http-port", type=int, help="HTTP port (default 8000)")
    serve.add_argument(
        "--database-url", help="database (default sqlite+aiosqlite:///var/callagent.db)"
    )

    call = sub.add_parser("call", parents=[common], help="run a call")
    call.add_argument(
        "--simulate",
        type=Path,
        nargs="+",
        metavar="CALLER.wav",
        help="the caller's recording(s), one per caller turn, played like a real caller",
    )
    call.add_argument(
        "--rate",
        type=int,
        choices=(8000, 16000),
        help="wire rate (default 8000; with --client the dialplan's, asterisk.audiosocket_format)",
    )
    call.add_argument("--out", type=Path, help="write the agent's audio to this wav file")
    call.add_argument("--recording", type=Path, help="write the call (caller L, agent R)")
    call.add_argument("--json", action="store_true", help="print one JSON object")
    call.add_argument(
        "--client",
        metavar="CLIENT_ID",
        help="a client's inbound call: routed to its agent, stored, acted on and analysed",
    )
    call.add_argument(
        "--caller-number", metavar="+1…", help="with --client: the number the caller calls from"
    )
    call.add_argument(
        "--did", help="with --client: the number called (default: the client's first number)"
    )
    call.add_argument(
        "--no-analysis", action="store_true", help="with --client: skip the post-call analysis"
    )
    call.add_argument("--database-url", help="with --client: the database (as for serve)")

    clients_parser = sub.add_parser("clients", help="manage clients and their API keys")
    clients_parser.add_argument("--database-url", help="database (as for serve)")
    clients_sub = clients_parser.add_subparsers(dest="clients_command", required=True)
    create = clients_sub.add_parser("create", help="create a client; prints its first API key")
    create.add_argument("name")
    keys = clients_sub.add_parser("keys", help="list a client's API keys")
    keys.add_argument("client_id")
    revoke = clients_sub.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("key_id")

    users_parser = sub.add_parser("users", help="manage who signs in to a client's dashboard")
    users_parser.add_argument("--database-url", help="database (as for serve)")
    users_sub = users_parser.add_subparsers(dest="users_command", required=True)
    user_create = users_sub.add_parser(
        "create", help="create a dashboard user; the password is asked for (or read from stdin)"
    )
    user_create.add_argument("--client", required=True, metavar="CLIENT_ID")
    user_create.add_argument("email")
    user_list = users_sub.add_parser("list", help="list dashboard users")
    user_list.add_argument("--client", metavar="CLIENT_ID", help="only this client's")
    user_disable = users_sub.add_parser("disable", help="disable a user and end their sessions")
    user_disable.add_argument("email")

    asterisk = sub.add_parser(
        "asterisk-config", help="write Asterisk's configuration from the settings"
    )
    asterisk.add_argument("--out", type=Path, required=True, help="folder for the .conf files")

    doctor = sub.add_parser(
        "doctor",
        parents=[common],
        help="check this install: CPU, llama.cpp build, models, ports, database, engines",
    )
    doctor.add_argument("--database-url", help="database (as for serve)")
    doctor.add_argument(
        "--no-engines", action="store_true", help="skip the engine self-check (seconds to minutes)"
    )

    models = sub.add_parser("models", help="download or verify model files (see --help)")
    models.add_argument("model_args", nargs=argparse.REMAINDER)
    return parser


def _overrides(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    return {
        ("agent", "file"): getattr(args, "agent", None),
        ("models", "profile"): getattr(args, "models", None),
        ("models", "models_dir"): getattr(args, "models_dir", None),
        ("network", "host"): getattr(args, "host", None),
        ("network", "audiosocket_port"): getattr(args, "audiosocket_port", None),
        ("network", "http_port"): getattr(args, "http_port", None),
        ("database", "url"): getattr(args, "database_url", None),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``callagent`` console command."""
    args = _build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    if args.command == "models":
        from callagent.modelfiles.cli import main as models_main

        return models_main(args.model_args)
    try:
        settings = load_settings(config_file=args.config, overrides=_overrides(args))
        if args.command == "doctor":
            from callagent.diagnostics.doctor import diagnose

            return diagnose(settings, engines=not args.no_engines)
        if args.command == "asterisk-config":
            return write_asterisk_config_files(settings, args.out)
        if args.command == "clients":
            argument = {"create": "name", "keys": "client_id", "revoke": "key_id"}
            command = args.clients_command
            return asyncio.run(
                run_clients_command(settings, command, getattr(args, argument[command]))
            )
        if args.command == "users":
            return asyncio.run(
                run_users_command(
                    settings,
                    args.users_command,
                    email=getattr(args, "email", None),
                    client=getattr(args, "client", None),
                )
            )
        if args.command == "serve":
            with contextlib.suppress(KeyboardInterrupt):
                return asyncio.run(serve(settings))
            return 0
        if not args.simulate:
            raise UsageError(
                "placing a real call needs Asterisk (docs/telephony.md); "
                "use --simulate CALLER.wav for now"
            )
        return asyncio.run(
            run_call(
                settings,
                args.simulate,
                rate=args.rate,
                out=args.out,
                recording=args.recording,
                as_json=args.json,
                client=args.client,
                caller_number=args.caller_number,
                did=args.did,
                analyse=not args.no_analysis,
            )
        )
    except (
        SettingsError,
        AgentProfileError,
        ModelFileError,
        EngineCheckError,
        UsageError,
    ) as error:
        print(f"callagent: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
