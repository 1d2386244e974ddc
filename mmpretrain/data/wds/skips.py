"""Skipped-sample bookkeeping: bad data is counted by reason, never fatal."""

from __future__ import annotations

from collections.abc import Mapping


class SkipSample(Exception):
    """Raised by a decode function to drop the current sample; `reason` names the counter."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class SkipCounter:
    """Counts of skipped samples/members by reason (e.g. `decode_error`, `truncated_tar`).

    Counts are cumulative per producer (one DataLoader worker); counters from several
    producers combine with `merge`, and round-trip through plain dicts for checkpoints.
    """

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        self._counts: dict[str, int] = {}
        if counts:
            self.merge(counts)

    def add(self, reason: str, n: int = 1) -> None:
        self._counts[reason] = self._counts.get(reason, 0) + n

    def merge(self, other: SkipCounter | Mapping[str, int]) -> SkipCounter:
        counts = other.to_dict() if isinstance(other, SkipCounter) else other
        for reason, n in counts.items():
            self.add(str(reason), int(n))
        return self

    def reset(self, counts: Mapping[str, int] | None = None) -> None:
        self._counts = {}
        if counts:
            self.merge(counts)

    def to_dict(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    @classmethod
    def from_dict(cls, counts: Mapping[str, int]) -> SkipCounter:
        return cls(counts)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def __getitem__(self, reason: str) -> int:
        return self._counts.get(reason, 0)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SkipCounter):
            return self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"SkipCounter({self.to_dict()})"
