"""Zeek-style connection uids: "C" followed by the base62 digits of a random 96-bit value.

Values come from a numpy generator, so a seed makes a run's uids reproducible (tests);
without one they are fresh each run. Encoding is vectorised over many uids at once.
"""

from __future__ import annotations

import numpy as np

UID_ALPHABET = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)
UID_DIGITS = 17  # 62**17 > 2**96
_GROUPS = 4  # base 62**5 limbs: 20 digits
_BASE5 = np.uint64(62**5)


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
        # base 62**5 (< 2**30) limbs first, least significant first: a long division of
        # the 3-limb number while it needs 96 bits, then plain uint64 arithmetic
        rem = limbs.astype(np.uint64)
        big = np.zeros((n, _GROUPS), dtype=np.uint64)
        for g in range(2):
            carry = np.zeros(n, dtype=np.uint64)
            for j in range(3):
                cur = (carry << np.uint64(32)) | rem[:, j]
                rem[:, j], carry = np.divmod(cur, _BASE5)
            big[:, g] = carry
        rest = (rem[:, 1] << np.uint64(32)) | rem[:, 2]  # below 2**37 after two rounds
        big[:, 3], big[:, 2] = np.divmod(rest, _BASE5)
        small = big.astype(np.uint32)
        digits62 = np.zeros((n, _GROUPS, 5), dtype=np.uint8)
        for k in range(5):
            small, digits62[:, :, k] = np.divmod(small, np.uint32(62))
        # most significant first, keeping the low UID_DIGITS digits
        digits = np.ascontiguousarray(digits62.reshape(n, _GROUPS * 5)[:, ::-1][:, -UID_DIGITS:])
        # drop leading zero digits: scatter the kept digits to the left of each row
        lead = np.argmax(digits != 0, axis=1)
        lead[(digits == 0).all(axis=1)] = UID_DIGITS - 1
        kept = np.arange(UID_DIGITS) >= lead[:, None]
        row_len = UID_DIGITS + 1
        dest = (np.arange(n) * row_len + 1 - lead)[:, None] + np.arange(UID_DIGITS)
        chars = np.zeros((n, row_len), dtype=np.uint8)
        chars[:, 0] = ord("C")
        chars.ravel()[dest[kept]] = UID_ALPHABET[digits[kept]]
        return chars


def uid_to_int(uid: str) -> int:
    """The 96-bit value behind a uid (for tests and round trips)."""
    value = 0
    for ch in uid[1:]:
        value = value * 62 + int(np.flatnonzero(UID_ALPHABET == ord(ch))[0])
    return value
