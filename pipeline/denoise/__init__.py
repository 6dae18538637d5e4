"""The denoise job and the nightly job built on it."""
