"""Zeek-style connection uids: "C" followed by the base62 digits of a random 96-bit value.

Values come from a numpy generator, so a seed makes a run's uids reproducible (tests);
without one they are fresh each run. Encoding is vectorised over many uids at once.
"""

from __future__ import annotations

import numpy as np

_ALPHABET = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)
_DIGITS = 17  # 62**17 > 2**96


class UidSource:
    """Draws 96-bit values (as three uint32 limbs) and renders them as uid strings."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)

    def draw(self, n: int) -> np.ndarray:
        """``(n, 3)`` uint32 limbs, most significant first."""
        return self._rng.integers(0, 2**32, size=(n, 3), dtype=np.uint64).astype(np.uint32)

    @staticmethod
    def render(limbs: np.ndarray) -> list[str]:
        """Uid strings for ``(n, 3)`` limbs (leading zero digits dropped, like Zeek)."""
        chars = UidSource.chars(limbs)
        return chars.view(f"S{chars.shape[1]}").ravel().astype(str).tolist()

    @staticmethod
    def chars(limbs: np.ndarray) -> np.ndarray:
        """``(n, 18)`` uint8 uid characters, NUL-padded on the right."""
        n = len(limbs)
        rem = limbs.astype(np.uint64)
        digits = np.zeros((n, _DIGITS), dtype=np.uint8)
        for k in range(_DIGITS - 1, -1, -1):  # long division of the 3-limb number by 62
            carry = np.zeros(n, dtype=np.uint64)
            for j in range(3):
                cur = (carry << np.uint64(32)) | rem[:, j]
                rem[:, j] = cur // np.uint64(62)
                carry = cur % np.uint64(62)
            digits[:, k] = carry
        # drop leading zero digits by shifting each row left and padding with NULs
        lead = np.argmax(digits != 0, axis=1)
        lead[(digits == 0).all(axis=1)] = _DIGITS - 1
        cols = np.arange(_DIGITS) + lead[:, None]
        chars = np.zeros((n, _DIGITS + 1), dtype=np.uint8)
        chars[:, 0] = ord("C")
        chars[:, 1:] = np.where(
            cols < _DIGITS, _ALPHABET[digits[np.arange(n)[:, None], np.minimum(cols, 16)]], 0
        )
        return chars


def uid_to_int(uid: str) -> int:
    """The 96-bit value behind a uid (for tests and round trips)."""
    value = 0
    for ch in uid[1:]:
        value = value * 62 + int(np.flatnonzero(_ALPHABET == ord(ch))[0])
    return value
