"""The per-row state every counting pass of the search reads, kept small.

Beam holds this state between the passes over the examples (the DirectRunner keeps a
PCollection that several stages read in memory until the last one has read it, and copies it
again for each stage that reads it), so its size per row is the search's memory per row. A row
keeps only its *fine* codes (FeatureEncoder.encode_fine) and its error and hold-out flags, as
bit fields of one or a few unsigned words: a feature with n fine codes takes the bits of n - 1.
The coarse codes the lattice counts are read from the fine ones through a table per feature
(fine code -> code), one batch at a time. The findings benchmark's 12 features (8 of 8
categories, 4 of 256 sub-bins) and the flags fit 58 bits: 8 bytes a row, where two int32
matrices, errors and hold-out took 98.

Pure numpy (no TFX, no Beam).
"""

import dataclasses
from typing import Sequence

import numpy as np

from blindspot.error_analysis.search import binning

ERROR_FLAG = 1
HOLDOUT_FLAG = 2
_UNSIGNED = (np.uint8, np.uint16, np.uint32, np.uint64)


def unsigned_dtype(num_codes: int) -> np.dtype:
    """The smallest unsigned dtype that holds the codes 0..num_codes - 1."""
    for dtype in _UNSIGNED:
        if num_codes - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f'{num_codes:,} codes do not fit in 64 bits')


def num_fine_codes(encoder: binning.FeatureEncoder) -> int:
    """How many fine codes the encoder gives (its codes when its bins are not split)."""
    if not encoder.fine_edges:
        return encoder.cardinality
    return encoder.num_fine_bins + (encoder.missing_code >= 0)


def coarse_of_fine(encoder: binning.FeatureEncoder) -> np.ndarray:
    """(num_fine_codes,) int32: the code (encoder.encode) of each fine code."""
    if not encoder.fine_edges:
        return np.arange(encoder.cardinality, dtype=np.int32)
    lookup = np.empty(num_fine_codes(encoder), dtype=np.int32)
    for code in range(encoder.num_ordered_bins):
        low, high = encoder.fine_span(code)
        lookup[low : high + 1] = code
    if encoder.missing_code >= 0:
        lookup[encoder.num_fine_bins] = encoder.missing_code
    return lookup


def coarse_tables(encoders: Sequence[binning.FeatureEncoder]) -> np.ndarray:
    """(features, most fine codes, at least 1) int32: row j is coarse_of_fine(encoders[j]),
    padded with 0: a feature left out of slicing has no code, and its rows read 0 (what
    FeatureEncoder.encode gives them); no other fine code reads the padding."""
    lookups = [coarse_of_fine(encoder) for encoder in encoders]
    table = np.zeros((len(lookups), max(map(len, lookups), default=1) or 1), dtype=np.int32)
    for feature, lookup in enumerate(lookups):
        table[feature, : len(lookup)] = lookup
    return table


def bit_width(num_codes: int) -> int:
    """Bits that hold the codes 0..num_codes - 1 (at least one)."""
    return max(1, int(num_codes - 1).bit_length())


def field_layout(widths: Sequence[int]) -> tuple:
    """(word dtype, (fields, 3) int64 rows of (word, shift, bits)): fields of these bit widths
    packed first-fit, widest first, into 64-bit words; one word narrows to the smallest
    unsigned dtype that holds it."""
    if any(width > 64 for width in widths):
        raise ValueError(f'a field of {max(widths)} bits does not fit a 64-bit word')
    layout = np.zeros((len(widths), 3), dtype=np.int64)
    used: list = []  # bits used per word
    for field in sorted(range(len(widths)), key=lambda f: -widths[f]):
        width = widths[field]
        word = next((w for w, bits in enumerate(used) if bits + width <= 64), len(used))
        if word == len(used):
            used.append(0)
        layout[field] = (word, used[word], width)
        used[word] += width
    dtype = np.dtype(np.uint64) if len(used) > 1 else unsigned_dtype(2 ** max(used, default=1))
    return dtype, layout


@dataclasses.dataclass(frozen=True)
class EncodedBatch:
    """A batch of rows reduced to what every counting pass reads.

    Attributes:
      words: (rows, words) unsigned: each row's fine codes, one bit field per feature, then
        its flags (ERROR_FLAG where the model was wrong, HOLDOUT_FLAG on the hold-out half).
      layout: (features + 1, 3) int64: (word, shift, bits) of each field (field_layout).
      coarse_table: coarse_tables(encoders), to read the codes.
    The layout and table take a few KB per batch, whatever its rows.
    """

    words: np.ndarray
    layout: np.ndarray
    coarse_table: np.ndarray

    @classmethod
    def pack(
        cls,
        fine: np.ndarray,
        errors: np.ndarray,
        holdout: np.ndarray,
        encoders: Sequence[binning.FeatureEncoder],
    ) -> 'EncodedBatch':
        """From int fine codes (rows, features), errors 0/1 and the hold-out mask. Every fine
        code must be a code of its encoder (strict encoding: none is -1)."""
        fine = np.asarray(fine)
        if fine.size and fine.min() < 0:
            raise ValueError('fine codes must be >= 0 (encode strictly)')
        flags = np.asarray(errors, np.uint8) | (np.asarray(holdout, np.uint8) * HOLDOUT_FLAG)
        widths = [bit_width(num_fine_codes(encoder)) for encoder in encoders]
        dtype, layout = field_layout(widths + [bit_width((ERROR_FLAG | HOLDOUT_FLAG) + 1)])
        words = np.zeros((len(flags), int(layout[:, 0].max()) + 1), dtype=dtype)
        for field, (word, shift, _) in enumerate(layout.tolist()):
            values = flags if field == len(encoders) else fine[:, field]
            words[:, word] |= values.astype(dtype) << dtype.type(shift)
        return cls(words=words, layout=layout, coarse_table=coarse_tables(encoders))

    def _field(self, field: int) -> np.ndarray:
        word, shift, bits = self.layout[field].tolist()
        dtype = self.words.dtype.type
        return (self.words[:, word] >> dtype(shift)) & dtype((1 << bits) - 1)

    @property
    def num_features(self) -> int:
        return len(self.layout) - 1

    @property
    def num_rows(self) -> int:
        return len(self.words)

    @property
    def flags(self) -> np.ndarray:
        return self._field(self.num_features)

    @property
    def errors(self) -> np.ndarray:
        """(rows,) int8: 1 where the model was wrong, else 0."""
        return (self.flags & ERROR_FLAG).astype(np.int8)

    @property
    def holdout(self) -> np.ndarray:
        """(rows,) bool: True on the hold-out half."""
        return (self.flags & HOLDOUT_FLAG) > 0

    def fine(self) -> np.ndarray:
        """(rows, features) fine codes, column-major, in the smallest unsigned dtype that
        holds them."""
        dtype = unsigned_dtype(self.coarse_table.shape[1])
        fine = np.empty((self.num_rows, self.num_features), dtype=dtype, order='F')
        for feature in range(self.num_features):
            fine[:, feature] = self._field(feature)
        return fine

    def codes(self) -> np.ndarray:
        """(rows, features) int32 codes (encode_columns' coarse codes), column-major."""
        codes = np.empty((self.num_rows, self.num_features), dtype=np.int32, order='F')
        for feature, lookup in enumerate(self.coarse_table):
            np.take(lookup, self._field(feature).astype(np.intp), out=codes[:, feature])
        return codes
