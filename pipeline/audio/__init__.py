"""Audio without a model: decode/encode/resample, windows, mixing, generated corpora."""
