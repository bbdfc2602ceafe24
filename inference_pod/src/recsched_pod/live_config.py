"""The config document a process serves, and how it changes without a restart.

Sources, in order of arrival: the file given by `--config` (a mounted ConfigMap in a cluster), read
at start and re-read when its modification time or size changes; and pushes on `PUT /admin/config`.
Either way a document older than the one served is ignored, so a slow ConfigMap refresh can never
undo a newer push. Listeners (the worker pool, metrics) are called on every applied change.
Parsing and validating a document is `config_document`'s job; this module decides what is served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recsched_pod.config_document import (
    ConfigDocument,
    ConfigDocumentError,
    parse_config_document,
)
from recsched_pod.settings import PodSettings

logger = logging.getLogger(__name__)

Listener = Callable[[ConfigDocument], None]


class ConfigFileError(ValueError):
    """The config file cannot be read or does not hold a valid document (start-up fails)."""


@dataclass(frozen=True)
class ApplyResult:
    applied: bool
    reason: str
    config: ConfigDocument


class LiveConfig:
    """Holds the served document; applies newer ones and tells listeners."""

    def __init__(self, initial: ConfigDocument) -> None:
        self._current = initial
        self._listeners: list[Listener] = []

    @property
    def current(self) -> ConfigDocument:
        return self._current

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)
        listener(self._current)

    def apply(self, document: ConfigDocument, source: str) -> ApplyResult:
        served = self._current
        if document.generation < served.generation:
            reason = f"ignored stale generation {document.generation} < served {served.generation}"
            logger.info("config from %s %s", source, reason)
            return ApplyResult(False, reason, served)
        if document == served:
            return ApplyResult(False, f"generation {document.generation} already served", served)
        self._current = document
        for listener in self._listeners:
            listener(document)
        reason = (
            f"generation {served.generation}->{document.generation}: batch "
            f"{served.batch_size}->{document.batch_size}, threshold "
            f"{served.offload_threshold}->{document.offload_threshold}, workers "
            f"{served.workers}->{document.workers}"
        )
        logger.info("config from %s applied: %s", source, reason)
        return ApplyResult(True, reason, document)


def read_config_file(path: Path) -> ConfigDocument:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigFileError(f"cannot read config file {path}: {error}") from None
    try:
        return parse_config_document(raw, str(path))
    except ConfigDocumentError as error:
        raise ConfigFileError(str(error)) from None


async def watch_config_file(live: LiveConfig, path: Path, poll_s: float) -> None:
    """Re-read `path` whenever its mtime or size changes; bad contents are logged and skipped."""
    last_seen: tuple[int, int] | None = None
    while True:
        signature = _file_signature(path)
        if signature is not None and signature != last_seen:
            last_seen = signature
            try:
                live.apply(read_config_file(path), f"file {path}")
            except ConfigFileError as error:
                logger.warning("config file change skipped: %s", error)
        await asyncio.sleep(poll_s)


def _file_signature(path: Path) -> tuple[int, int] | None:
    # One stat() per poll: cheap enough for the event loop, unlike reading the file every time.
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def initial_config(settings: PodSettings) -> ConfigDocument:
    """The document served before any push: the `--config` file if given, else the flags."""
    if settings.config_path is not None:
        return read_config_file(settings.config_path)
    return ConfigDocument(batchSize=settings.batch_size, workers=settings.initial_workers)
