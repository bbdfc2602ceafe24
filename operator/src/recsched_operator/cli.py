"""The `recsched-operator` command: `run` (kopf), `render`, `local` (local mode), `simulate`.

Arguments are parsed in `main`, never at import. `render` prints exactly the manifests the operator
would apply for a RecModel file (with a placeholder token), which doubles as a dry run for users.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from recsched_operator import simulate_cli
from recsched_operator.errors import InvalidSpecError
from recsched_operator.local import cli as local_cli
from recsched_operator.recmodel.api import KIND, parse_spec
from recsched_operator.recmodel.children import render_children, render_secret
from recsched_operator.recmodel.config_document import config_for_spec
from recsched_operator.recmodel.naming import Owner
from recsched_operator.settings import OperatorSettings

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"
PLACEHOLDER_TOKEN = "<generated-once-by-the-operator>"


def _add_run(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="run the operator (kopf) against a cluster")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        dest="namespaces",
        help="watch this namespace (repeatable; globs allowed)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch the whole cluster (the default when no namespace is given)",
    )
    run.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: do not coordinate with other operator replicas",
    )
    run.add_argument("--peering", default=None, help="kopf peering name (default from settings)")
    run.add_argument("--priority", type=int, default=None, help="kopf peering priority")
    run.add_argument("--verbose", action="store_true", help="debug logging")


def _add_render(subparsers: Any) -> None:
    render = subparsers.add_parser("render", help="print the manifests a RecModel file produces")
    render.add_argument("file", type=Path, help="YAML file holding a RecModel")
    render.add_argument("--namespace", default=None, help="override metadata.namespace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsched-operator", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_run(subparsers)
    _add_render(subparsers)
    local_cli.add_parser(subparsers)
    simulate_cli.add_parser(subparsers)
    return parser


def kopf_run_options(args: argparse.Namespace, settings: OperatorSettings) -> dict[str, Any]:
    """The scope and peering arguments of `kopf.run` / `kopf.operator` for `run`'s flags.

    Kopf makes peering mandatory whenever it is given a peering name, and then pauses every watch
    until it sees the peering resources (forever when their CRD is absent, even with
    `standalone=True`), so standalone runs pass no name. Without `--standalone` the name is
    passed and the start-up handler fails loudly when the peering CRD or object is missing
    (`lifecycle.check_peering`).
    """
    return {
        "standalone": bool(args.standalone),
        "namespaces": list(args.namespaces),
        "clusterwide": not args.namespaces,
        "peering_name": None if args.standalone else settings.peering_name,
    }


def _run_operator(args: argparse.Namespace) -> int:
    import kopf

    from recsched_operator.reconcile import handlers  # noqa: F401 - importing registers the handlers

    overrides: dict[str, Any] = {}
    if args.peering is not None:
        overrides["peering_name"] = args.peering
    if args.priority is not None:
        overrides["peering_priority"] = args.priority
    try:
        settings = OperatorSettings(**overrides)
    except ValidationError as exc:
        print(f"recsched-operator: invalid RECSCHED_* settings:\n{exc}", file=sys.stderr)
        return 2
    log_format = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=args.verbose, log_format=log_format)
    try:
        # The start-up handler checks peering in the watched namespaces (`lifecycle.start`).
        memo = kopf.Memo(operator_settings=settings, watched_namespaces=tuple(args.namespaces))
        kopf.run(**kopf_run_options(args, settings), memo=memo)
    except Exception as exc:
        # A start-up handler that failed permanently (kopf has logged it) ends the operator;
        # kopf wraps it in a private ActivityError, so its cause carries our message.
        if not isinstance(exc.__cause__, kopf.PermanentError):
            raise
        print(f"recsched-operator: start-up failed: {exc.__cause__}", file=sys.stderr)
        return 1
    return 0


def load_recmodel(path: Path) -> dict[str, Any]:
    """The first RecModel document in a YAML file."""
    for document in yaml.safe_load_all(path.read_text()):
        if isinstance(document, dict) and document.get("kind") == KIND:
            return document
    raise ValueError(f"{path}: no {KIND} document found")


def render_recmodel(recmodel: dict[str, Any], namespace: str | None = None) -> list[dict[str, Any]]:
    """The children the operator would create for this RecModel, Secret included."""
    meta = recmodel.get("metadata") or {}
    owner = Owner(
        name=str(meta["name"]),
        namespace=namespace or str(meta.get("namespace") or "default"),
        uid=str(meta.get("uid") or PLACEHOLDER_UID),
    )
    spec = parse_spec(recmodel.get("spec") or {})
    config = config_for_spec(spec, None)
    return [render_secret(owner, PLACEHOLDER_TOKEN), *render_children(owner, spec, config)]


def _render(args: argparse.Namespace) -> int:
    try:
        manifests = render_recmodel(load_recmodel(args.file), args.namespace)
    except (OSError, ValueError, KeyError, InvalidSpecError, yaml.YAMLError) as exc:
        print(f"recsched-operator render: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump_all(manifests, sort_keys=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return _run_operator(args)
    if args.command == "render":
        return _render(args)
    if args.command == "local":
        return local_cli.run(args)
    return simulate_cli.run(args)
