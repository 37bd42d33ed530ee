"""Process logging: one line per event on stderr, level from HCT_LOG_LEVEL.

Loggers under `hct.*` never receive cell data or patient ids (tests check the request path).
"""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
