"""The evaluate job: every model on clean/noisy pairs."""
