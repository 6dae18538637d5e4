#!/usr/bin/env bash
# Submit tonight's incremental denoise run to a Ray cluster. Idempotent: the submission id and the run id
# are both today's UTC date, so a scheduler's retry neither duplicates the Ray job nor the run.
#
#   crontab -e
#   15 2 * * *  RAY_ADDRESS=http://HEAD:8265 /opt/diffgmm/deploy/nightly-submit.sh s3://in-bucket/audio s3://out-bucket/denoised >>/var/log/diffgmm-nightly.log 2>&1
#
# Environment: RAY_ADDRESS (the head's job API), RAY_AUTH_MODE=token and the cluster's token for clusters
# started with token auth (Ray 2.60's default for `ray start --head`), DIFFGMM_ARGS for extra flags
# (e.g. "--reprocess-stale" or "--config s3://cfg/nightly.yaml"), DIFFGMM_NIGHT to run another date
# (a backfill; default today, UTC). Storage credentials are the cluster nodes' own (instance roles,
# service accounts), never passed from here.
#
# Run again on the same night: a job that succeeded or is still running is left alone (exit 0); a failed
# one is resubmitted under a new submission id with the same run id, which resumes from its durable rows.
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: $0 INPUT_URI OUTPUT_URI   (RAY_ADDRESS must point at the cluster's job API)" >&2
  exit 2
fi
: "${RAY_ADDRESS:?set RAY_ADDRESS to the job API of the cluster, e.g. http://127.0.0.1:8265}"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
night="${DIFFGMM_NIGHT:-$(date -u +%Y-%m-%d)}"
here="$(cd "$(dirname "$0")/.." && pwd)"
submission="nightly-${night}"
# `ray job status` says "Job '<id>' succeeded" (failed, stopped) or "Status for job '<id>': RUNNING" (PENDING);
# for an unknown id it fails, and the status stays empty.
status="$(ray job status --address "$RAY_ADDRESS" "$submission" 2>&1 \
  | grep -oE "[Jj]ob '${submission}'(:)? (succeeded|failed|stopped|RUNNING|PENDING)" | tail -n 1 | awk '{print toupper($NF)}' || true)"
echo "$submission: previous status ${status:-none}"
case "$status" in
  SUCCEEDED|RUNNING|PENDING)
    echo "$submission is already $status; nothing to submit"
    exit 0 ;;
  FAILED|STOPPED)
    submission="${submission}-retry-$(date -u +%H%M%S)" ;;
esac
# shellcheck disable=SC2086  # DIFFGMM_ARGS is a list of flags
exec ray job submit --address "$RAY_ADDRESS" --submission-id "$submission" --working-dir "$here" \
  -- python -m jobs.cli nightly --input "$1" --output "$2" --run-id "$night" ${DIFFGMM_ARGS:-}
