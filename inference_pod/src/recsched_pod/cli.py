"""`recsched-pod`: run an inference pod (or, with `--role router`, the router) on one port.

Flags override `RECSCHED_*` environment variables; both are validated by `PodSettings` before
anything starts, so a bad value fails at once with the field's name.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from recsched_pod.settings import PodSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsched-pod",
        description="Serve a DeepRecInfra model over Open Inference Protocol v2 with "
        "DeepRecSched query splitting. Every flag can also be set as RECSCHED_<FLAG>.",
    )
    add = parser.add_argument
    add("--role", choices=["pod", "router"], help="pod (default) or router")
    add("--model", help="model zoo name: rmc1 rmc2 rmc3 ncf wnd mtwnd din dien")
    add("--scale", type=float, help="embedding rows = paper rows x scale (default 0.01)")
    add("--seed", type=int, help="weight initialisation seed")
    add("--host", help="bind address (default 127.0.0.1)")
    add("--port", type=int, help="port for OIP, /metrics and /admin (default 8000)")
    add("--config", dest="config_path", type=Path, help="config document file, re-read on change")
    add("--workers", type=int, help="model worker threads when no --config gives them")
    add("--batch-size", type=int, help="items per request when no --config gives it")
    add("--device", choices=["cpu", "cuda", "emulated"], help="where the model runs")
    add(
        "--graph-mode",
        choices=["traced", "eager"],
        help="traced (default): TorchScript trace, no GIL per request; eager: the module",
    )
    add(
        "--pin-workers",
        choices=["auto", "on", "off"],
        help="pin model workers one per CPU (default auto: when the CPUs allowed are no more "
        "than the workers)",
    )
    add("--max-query-items", type=int, help="queries above this get 413 (default 1024)")
    add("--max-queue-requests", type=int, help="queued requests before 503 (default 4096)")
    add("--recmodel", help="RecModel name for metric labels")
    add("--pool", choices=["cpu", "gpu", "router"], help="pool label (default from role/device)")
    add("--cpu-endpoints", help="router: host:port,... of CPU pool pods")
    add("--gpu-endpoints", help="router: host:port,... of GPU pool pods")
    add("--endpoints-file", type=Path, help='router: JSON {"cpu": [...], "gpu": [...]}')
    add("--cpu-endpoints-dns", help="router: headless Service name:port of the CPU pool")
    add("--gpu-endpoints-dns", help="router: headless Service name:port of the GPU pool")
    add(
        "--gpu-profile",
        dest="gpu_profile_path",
        type=Path,
        help="emulated device: GPU latency profile file measured on a real GPU",
    )
    add(
        "--http-server",
        choices=["lean", "httptools"],
        help="connection protocol: lean (default, the project's) or httptools (uvicorn's, bounded)",
    )
    add(
        "--upstream-client",
        choices=["lean", "aiohttp"],
        help="router: HTTP client to the pods, lean (default) or aiohttp",
    )
    add("--admin-token-file", type=Path, help="file holding the /admin bearer token")
    add("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def settings_from_args(argv: list[str] | None) -> tuple[PodSettings, str]:
    args = vars(build_parser().parse_args(argv))
    log_level = str(args.pop("log_level"))
    overrides = {key: value for key, value in args.items() if value is not None}
    return PodSettings(**overrides), log_level


def main(argv: list[str] | None = None) -> int:
    try:
        settings, log_level = settings_from_args(argv)
    except ValidationError as error:
        for issue in error.errors():
            field = ".".join(str(part) for part in issue["loc"]) or "settings"
            print(f"recsched-pod: invalid {field}: {issue['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn  # imported late: --help and setting errors stay fast

    from recsched_pod.app_factory import create_role_app, http_protocol_for

    try:
        app = create_role_app(settings)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"recsched-pod: {error}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        http=http_protocol_for(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
