#!/usr/bin/env bash
# Seed 000's taxi story on local servers, step by step (see README.md beside this file).
set -euo pipefail
exec bash "$(dirname "$0")/../../dev.sh" taxi "$@"
