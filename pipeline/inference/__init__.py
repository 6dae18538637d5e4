"""The model applied to audio: windowed enhancement, long-file streaming, the Ray Data stages and their actor wiring."""
