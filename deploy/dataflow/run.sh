#!/usr/bin/env bash
# Build the worker container and the Flex Template, then run a build on Dataflow.
# Needs: gcloud (authenticated), a GCS bucket, an Artifact Registry repository. Nothing here runs in CI.
set -euo pipefail
: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET}" "${REPO:=imagenet-captions}"
VERSION=0.1.0
WORKER="$REGION-docker.pkg.dev/$PROJECT/$REPO/imagenet-captions-worker:$VERSION"
LAUNCHER="$REGION-docker.pkg.dev/$PROJECT/$REPO/imagenet-captions-launcher:$VERSION"
cd "$(dirname "$0")/../.."

gcloud builds submit --project "$PROJECT" --tag "$WORKER" --file deploy/dataflow/Dockerfile .
gcloud builds submit --project "$PROJECT" --tag "$LAUNCHER" --file deploy/dataflow/Dockerfile.template .
gcloud dataflow flex-template build "gs://$BUCKET/templates/imagenet-captions-$VERSION.json" \
    --image "$LAUNCHER" --sdk-language PYTHON --metadata-file deploy/dataflow/metadata.json

gcloud dataflow flex-template run "imagenet-captions-$(date +%Y%m%d-%H%M%S)" \
    --project "$PROJECT" --region "$REGION" \
    --template-file-gcs-location "gs://$BUCKET/templates/imagenet-captions-$VERSION.json" \
    --parameters metadata="release:gs://$BUCKET/imagenet_captions.zip" \
    --parameters imagenet="gs://$BUCKET/ILSVRC2012_img_train.tar" \
    --parameters out="gs://$BUCKET/imagenet-captions" \
    --parameters sdk_container_image="$WORKER" \
    --parameters experiments=use_runner_v2 \
    --max-workers 32 --worker-machine-type n2-standard-8
