#!/bin/sh
# The checkout workflow as a plain shell command, speaking the step protocol by hand with jq:
# the envelope comes on stdin, the answer goes to stdout. Each run of this script handles one
# call: it finds the first step not in the memo (`.steps`) and answers it.
set -eu
envelope=$(cat)
has() { printf '%s' "$envelope" | jq -e --arg id "$1" '.steps | has($id)' >/dev/null; }
get() { printf '%s' "$envelope" | jq -c "$1"; }

if ! has reserve; then
    get '{ops: [{op: "step", id: "reserve", output: {reserved: (.input.items // [])}}]}'
elif ! has approval; then
    get '{ops: [{op: "wait_for_event", id: "approval", event: "shop/order.approved",
                 if: "event.data.order == run.input.order", timeout: (.input.approve_within // "7d")}]}'
elif [ "$(get '.steps.approval.output')" = "null" ]; then
    get '{output: {order: .input.order, status: "expired"}}'
elif ! has charge; then
    get '{ops: [{op: "step", id: "charge", output: {charged: (.input.amount // 0), by: .steps.approval.output.data.by}}]}'
elif ! has receipt; then
    get '{ops: [{op: "send_event", id: "receipt", events: {name: "shop/receipt.sent", data: {order: .input.order}}}]}'
else
    get '{output: {order: .input.order, status: "paid", stock: .steps.reserve.output, charge: .steps.charge.output}}'
fi
