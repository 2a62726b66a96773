"""Access-log set-up shared by the two example apps: one line per request with its id."""

from __future__ import annotations

import logging


class _WithRequestID(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        http = getattr(record, "http", {})
        record.request_id = http.get("state", {}).get("request_id", "-")
        return True


def configure() -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_WithRequestID())
    handler.setFormatter(logging.Formatter("access: %(message)s request_id=%(request_id)s"))
    logger = logging.getLogger("middleware.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
