"""Everything that touches data: storage, audio, windowing, Ray Data stages, metrics, tables."""
