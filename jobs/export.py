"""``diffgmm export``: a training checkpoint → the inference artefact ``diffgmm denoise`` loads."""

from __future__ import annotations


def run(args) -> int:
    from pipeline.core.checkpoints import export_checkpoint

    model_id, size = export_checkpoint(args.checkpoint, args.output)
    print(f"exported {model_id} to {args.output} ({size / 1e6:.2f} MB)")
    return 0
