"""Training: the train step and validation, and the Ray Train / local executors."""
