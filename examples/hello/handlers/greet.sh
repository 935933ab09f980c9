#!/bin/sh
# Started by a `hello/person.arrived` event: stdin is the event ({"id","name","data","ts"}).
# Prints a greeting as the run's output; the event itself is kept under "event".
event=$(cat)
echo "greeting someone (event on stdin)" >&2
printf '{"greeting": "hello", "event": %s}\n' "$event"
