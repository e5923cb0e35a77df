#!/usr/bin/env bash
# tests/cli_fulldisk.sh on a real full filesystem (a tmpfs; skipped, exit 77,
# where none can be mounted).
FULLDISK=tmpfs exec bash "$(dirname "$0")/cli_fulldisk.sh"
