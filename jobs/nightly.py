"""``diffgmm nightly``: the denoise job over what is new since the last night (cron or a KubeRay RayCronJob)."""

from __future__ import annotations


def run(args) -> int:
    from pipeline.core.cli_flags import denoise_flags, overrides_from
    from pipeline.core.config import load_yaml
    from pipeline.denoise.job import DenoiseConfig
    from pipeline.denoise.nightly import NightlyConfig, run_nightly

    nightly = NightlyConfig(max_attempts=args.max_attempts, reprocess_stale=args.reprocess_stale, prune=args.prune)
    config = load_yaml(DenoiseConfig, args.config, overrides_from(args, denoise_flags()))
    result = run_nightly(config, nightly, dry_run=args.dry_run)
    counts = result["counts"]
    if result.get("dry_run"):
        plan = result["plan"]
        todo = sum(len(plan[r]) for r in ("new", "changed", "retry", "stale"))
        print(
            f"dry run {result['run_id']}: {todo} would be processed ({counts['new']} new, {counts['changed']} changed, "
            f"{counts['retry']} to retry, {counts['stale']} stale), {counts['unchanged']} unchanged, "
            f"{counts['deleted']} gone from the input"
        )
        lines = [
            f"  {reason} {key}" for reason in ("new", "changed", "retry", "stale", "deleted") for key in plan[reason]
        ]
        print("\n".join(lines[:50]) + (f"\n  … and {len(lines) - 50} more" if len(lines) > 50 else ""))
        return 0
    print(
        f"nightly {result['run_id']}: {counts['new']} new, {counts['changed']} changed, {counts['retry']} to retry, "
        f"{counts['stale']} stale, {counts['unchanged']} unchanged, {counts['deleted']} gone from the input"
    )
    if result.get("already_committed"):
        pending = result["pending"]
        print(
            f"run {result['run_id']} was already committed; outputs unchanged"
            + (
                f". {pending} inputs are new or changed since: they go into the next run "
                f"(tomorrow, or now with --run-id <another id>)"
                if pending
                else ""
            )
        )
    elif result.get("nothing_new"):
        print("nothing new: no run was started")
    else:
        from pipeline.denoise.summary import run_line

        print(run_line({"run_id": result["run_id"], **result["summary"]}))
    if result["gave_up"]:
        print(f"not retried (failed {args.max_attempts} times, unchanged): {', '.join(result['gave_up'])}")
    if result["bad_content"]:
        print(f"not retried (the file itself is bad; replace it to retry): {', '.join(result['bad_content'])}")
    if result["deleted"]:
        action = (
            f"pruned {result.get('pruned_outputs', 0)} outputs" if args.prune else "outputs kept (--prune deletes them)"
        )
        print(f"gone from the input: {', '.join(result['deleted'])}{' …' if counts['deleted'] > 20 else ''}; {action}")
    ran = not result.get("nothing_new")  # "nothing new" created no run folder: naming one would mislead
    print(f"ledger: {result['ledger_rows']} inputs" + (f"; outputs: {result['run_uri']}" if ran else ""))
    return 0
