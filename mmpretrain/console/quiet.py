"""Keep third-party advertising and noise off the console (Lightning's "try litlogger" tip,
its note that our own model summary replaced its default)."""

from __future__ import annotations

import logging

# rank_zero_info goes through whichever of these two loggers lightning_utilities was given last
_LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
_TIP_MARKERS = ("litlogger", "💡 Tip:", "Skipping setting a default `ModelSummary`")


class DropThirdPartyTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in _TIP_MARKERS)


def silence_third_party_tips() -> None:
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropThirdPartyTips) for f in logger.filters):
            logger.addFilter(DropThirdPartyTips())
