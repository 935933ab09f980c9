#!/bin/sh
# Reads {"seconds": N} on stdin (already validated by the input schema), sleeps, answers JSON.
seconds=$(sed -n 's/.*"seconds"[[:space:]]*:[[:space:]]*\([0-9.eE+-]*\).*/\1/p')
echo "sleeping ${seconds}s (run $PLINTH_RUN_ID, attempt $PLINTH_ATTEMPT)" >&2
sleep "$seconds"
echo "{\"slept\": $seconds}"
