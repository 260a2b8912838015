"""The per-row state every counting pass of the search reads, kept small.

Beam holds this state between the passes over the examples (the DirectRunner keeps a
PCollection that several stages read in memory until the last one has read it), so its size
per row is the search's memory per row. A row keeps only its *fine* codes
(FeatureEncoder.encode_fine), in the smallest unsigned dtype that holds every feature's codes,
and one byte of flags (error, hold-out); the coarse codes the lattice counts are read from the
fine ones through a table per feature (fine code -> code), one batch at a time. Twelve features
then take 13 bytes a row instead of 98 (two int32 matrices, errors and hold-out).

Pure numpy (no TFX, no Beam).
"""

import dataclasses
from typing import Sequence

import numpy as np

from blindspot.error_analysis.search import binning

ERROR_FLAG = 1
HOLDOUT_FLAG = 2
_UNSIGNED = (np.uint8, np.uint16, np.uint32)


def unsigned_dtype(num_codes: int) -> np.dtype:
    """The smallest unsigned dtype that holds the codes 0..num_codes - 1."""
    for dtype in _UNSIGNED:
        if num_codes - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f'{num_codes:,} codes do not fit in 32 bits')


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
    """(features, most fine codes) int32: row j is coarse_of_fine(encoders[j]), padded with
    -1 (no fine code reads the padding)."""
    lookups = [coarse_of_fine(encoder) for encoder in encoders]
    table = np.full((len(lookups), max(map(len, lookups), default=0)), -1, dtype=np.int32)
    for feature, lookup in enumerate(lookups):
        table[feature, : len(lookup)] = lookup
    return table


@dataclasses.dataclass(frozen=True)
class EncodedBatch:
    """A batch of rows reduced to what every counting pass reads.

    Attributes:
      fine: (rows, features) fine codes in the smallest unsigned dtype for the encoders.
      flags: (rows,) uint8: ERROR_FLAG where the model was wrong, HOLDOUT_FLAG on the
        hold-out half.
      coarse_table: coarse_tables(encoders), to read the codes (a few KB, whatever the rows).
    """

    fine: np.ndarray
    flags: np.ndarray
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
        width = max((num_fine_codes(encoder) for encoder in encoders), default=1)
        flags = np.asarray(errors, np.uint8) | (np.asarray(holdout, np.uint8) * HOLDOUT_FLAG)
        return cls(
            # Column-major: the passes read one feature's codes at a time.
            fine=np.asfortranarray(fine, dtype=unsigned_dtype(width)),
            flags=flags,
            coarse_table=coarse_tables(encoders),
        )

    @property
    def num_rows(self) -> int:
        return len(self.flags)

    @property
    def errors(self) -> np.ndarray:
        """(rows,) int8: 1 where the model was wrong, else 0."""
        return (self.flags & ERROR_FLAG).astype(np.int8)

    @property
    def holdout(self) -> np.ndarray:
        """(rows,) bool: True on the hold-out half."""
        return (self.flags & HOLDOUT_FLAG) > 0

    def codes(self) -> np.ndarray:
        """(rows, features) int32 codes (encode_columns' coarse codes) of this batch,
        column-major."""
        codes = np.empty(self.fine.shape, dtype=np.int32, order='F')
        for feature, lookup in enumerate(self.coarse_table):
            np.take(lookup, self.fine[:, feature], out=codes[:, feature])
        return codes
