"""Zeek-style connection uids: "C" followed by the base62 digits of a random 96-bit value.

Without a seed, values come from a fresh numpy generator each run. With one, a flow's
uid is a keyed mix of the seed and the capture position of the flow's first packet
(``draw(n, positions)``), so it is the same however the packets were cut into batches,
read live or from a file, in one process or several: reproducible for a given seed and
capture. Encoding is vectorised over many uids at once.
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
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        # the seed as two 64-bit keys (any int: hashed down by its own generator)
        self._keys = np.random.default_rng(seed).integers(0, 2**63, size=2, dtype=np.uint64)

    def draw(
        self, n: int, positions: np.ndarray | None = None, keys: np.ndarray | None = None
    ) -> np.ndarray:
        """``(n, 3)`` uint32 limbs, most significant first: random, or with a seed, the
        flows' first-packet ``positions`` and their packed ``keys`` (a tunnelled packet
        starts two flows at one position: its own and its tunnel's), a function of
        (seed, position, key)."""
        if self.seed is None or positions is None:
            return self._rng.integers(0, 2**32, size=(n, 3), dtype=np.uint64).astype(np.uint32)
        pos = np.asarray(positions, dtype=np.uint64)
        if keys is not None:
            pos = pos ^ _key_hash(keys)
        hi, lo = _mix(pos ^ self._keys[0]), _mix(_mix(pos) ^ self._keys[1])
        limbs = np.empty((len(pos), 3), dtype=np.uint32)
        limbs[:, 0] = (hi >> np.uint64(32)).astype(np.uint32)
        limbs[:, 1] = (hi & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        limbs[:, 2] = (lo >> np.uint64(32)).astype(np.uint32)
        return limbs

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


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea and Flood): 64 well-mixed bits of ``x``."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _key_hash(keys: np.ndarray) -> np.ndarray:
    """64 mixed bits of each row of ``keys`` ((n, width) uint8)."""
    keys = np.ascontiguousarray(keys, dtype=np.uint8)
    pad = (-keys.shape[1]) % 8
    if pad:
        keys = np.concatenate([keys, np.zeros((len(keys), pad), np.uint8)], axis=1)
    words = keys.view(np.uint64)
    h = np.zeros(len(keys), dtype=np.uint64)
    for column in range(words.shape[1]):
        h = _mix(h ^ words[:, column])
    return h


def uid_to_int(uid: str) -> int:
    """The 96-bit value behind a uid (for tests and round trips)."""
    value = 0
    for ch in uid[1:]:
        value = value * 62 + int(np.flatnonzero(UID_ALPHABET == ord(ch))[0])
    return value
