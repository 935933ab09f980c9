#!/bin/sh
# Fails on purpose: writes why to stderr (kept as the run's log) and exits non-zero.
echo "{\"level\":\"error\",\"message\":\"failing on purpose\",\"attempt\":$PLINTH_ATTEMPT}" >&2
exit 1
