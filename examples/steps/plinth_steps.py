"""Durable steps for Plinth step functions (`steps: true`), in one file, standard library only.

Copy this file next to your handler. Write the workflow as a plain function of (ctx, input):

    import plinth_steps

    def checkout(ctx, order):
        stock = ctx.step("reserve", lambda: reserve(order))
        approval = ctx.wait_for_event("approve", "shop/order.approved",
                                      if_="event.data.order == run.input.order", timeout="7d")
        if approval is None:
            return {"cancelled": True}
        charge, mail = ctx.parallel([("charge", lambda: charge(order)), ("mail", lambda: mail(order))])
        return {"stock": stock, "charge": charge}

    if __name__ == "__main__":
        plinth_steps.run_command(checkout)      # a command handler: envelope on stdin, answer on stdout
        # plinth_steps.serve(checkout, port=9000)  # or an HTTP handler

Plinth calls the handler once per step boundary with the results of the steps already done
(the memo). The workflow runs from the top each time: a step in the memo is not executed again,
it returns its stored output (or raises its stored error); at the first step that is not there
the helper stops and tells Plinth what was reached. So code between steps must be deterministic:
do side effects inside steps. A name used twice in one run is told apart as `name:1`, `name:2`.
"""

import json
import sys
import traceback

__all__ = ["Context", "StepFailed", "handle", "run_command", "serve"]


class StepFailed(Exception):
    """A step's stored error: its attempts are spent, or it was not retryable."""

    def __init__(self, step_id, message):
        super().__init__(f"step {step_id} failed: {message}")
        self.step_id = step_id
        self.message = message


class Retryable(Exception):
    """Raise from inside a step to say it may succeed when tried again (the default for any
    exception); raise `Fatal` for one that no retry will fix."""


class Fatal(Exception):
    """Raise from inside a step when no retry will fix it."""


class _Reached(BaseException):
    """Stops the workflow at a step boundary; carries the ops to answer."""

    def __init__(self, ops):
        super().__init__("reached a step")
        self.ops = ops


class _OrderChanged(BaseException):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


class Context:
    """What a workflow sees: the run, its input, and the step operations."""

    def __init__(self, envelope):
        self.run_id = envelope.get("run_id")
        self.function = envelope.get("function")
        self.attempt = envelope.get("attempt")
        self.input = envelope.get("input")
        self._memo = envelope.get("steps") or {}
        self._order = list(self._memo)  # the order the steps were first reached
        self._pos = 0
        self._target = (envelope.get("ctx") or {}).get("target")
        self._counts = {}

    # -- ids and replay -------------------------------------------------------------------
    def _id(self, name):
        if not isinstance(name, str) or not name:
            raise ValueError("a step name is a non-empty string")
        n = self._counts.get(name, 0)
        self._counts[name] = n + 1
        return name if n == 0 else f"{name}:{n}"

    def _stored(self, step_id):
        """The memo entry of step_id, checking that stored steps come back in their order."""
        if step_id in self._memo:
            if self._target is None:
                expected = self._order[self._pos] if self._pos < len(self._order) else None
                if expected != step_id:
                    raise _OrderChanged(
                        f"step `{step_id}` was reached where the stored run has `{expected}`: "
                        "the code changed under this run"
                    )
                self._pos += 1
            return self._memo[step_id]
        if self._target is None and self._pos < len(self._order):
            raise _OrderChanged(
                f"new step `{step_id}` was reached before stored step `{self._order[self._pos]}`: "
                "the code changed under this run"
            )
        return None

    @staticmethod
    def _value(step_id, entry):
        if "error" in entry:
            raise StepFailed(step_id, (entry.get("error") or {}).get("message", ""))
        return entry.get("output")

    # -- operations -----------------------------------------------------------------------
    def step(self, name, fn):
        """Runs fn() once for the whole run and returns its result (JSON-serialisable)."""
        step_id = self._id(name)
        entry = self._stored(step_id)
        if entry is not None:
            return self._value(step_id, entry)
        if self._target is not None and self._target != step_id:
            # A targeted call runs only its target; any other new step ends the replay here.
            raise _Reached([])
        raise _Reached([_run(step_id, fn)])

    def parallel(self, steps):
        """Runs [(name, fn), ...] in parallel (one call each); returns their results in order."""
        if len(steps) < 2:
            raise ValueError("parallel() takes two or more steps")
        ids = [(self._id(name), fn) for name, fn in steps]
        results, missing = [], []
        for step_id, fn in ids:
            entry = self._stored(step_id)
            if entry is None:
                missing.append((step_id, fn))
            else:
                results.append((step_id, entry))
        if not missing:
            return [self._value(step_id, entry) for step_id, entry in results]
        if self._target is not None:
            for step_id, fn in missing:
                if step_id == self._target:
                    raise _Reached([_run(step_id, fn)])
            raise _Reached([])
        raise _Reached([{"op": "plan", "id": step_id} for step_id, _ in missing])

    def sleep(self, name, duration=None, until=None):
        """Waits for a duration ("90s", "2h") or until an RFC 3339 time, holding no worker."""
        step_id = self._id(name)
        if self._stored(step_id) is not None:
            return None
        op = {"op": "sleep", "id": step_id}
        op.update({"duration": duration} if until is None else {"until": until})
        raise _Reached([op])

    def wait_for_event(self, name, event, if_=None, timeout=None):
        """Waits for an event named `event` received from now on, matching the CEL `if_` (over
        `event` and `run`); returns the event, or None when `timeout` passed first."""
        step_id = self._id(name)
        entry = self._stored(step_id)
        if entry is not None:
            return self._value(step_id, entry)
        op = {"op": "wait_for_event", "id": step_id, "event": event}
        if if_ is not None:
            op["if"] = if_
        if timeout is not None:
            op["timeout"] = timeout
        raise _Reached([op])

    def invoke(self, name, function, input=None, timeout=None):
        """Starts a run of `function` and returns its output once it ends (raises StepFailed
        when it failed)."""
        step_id = self._id(name)
        entry = self._stored(step_id)
        if entry is not None:
            return self._value(step_id, entry)
        op = {"op": "invoke", "id": step_id, "function": function, "input": input if input is not None else {}}
        if timeout is not None:
            op["timeout"] = timeout
        raise _Reached([op])

    def send_event(self, name, events):
        """Sends one event or a list of them, once per run; returns their ids."""
        step_id = self._id(name)
        entry = self._stored(step_id)
        if entry is not None:
            return self._value(step_id, entry)["event_ids"]
        raise _Reached([{"op": "send_event", "id": step_id, "events": events}])


def _run(step_id, fn):
    try:
        return {"op": "step", "id": step_id, "output": fn()}
    except Fatal as e:
        return {"op": "step_error", "id": step_id, "error": {"message": str(e) or type(e).__name__, "retryable": False}}
    except Exception as e:  # noqa: BLE001 - any failure of a step is reported to Plinth
        traceback.print_exc(file=sys.stderr)
        return {"op": "step_error", "id": step_id, "error": {"message": str(e) or type(e).__name__, "retryable": True}}


def handle(workflow, envelope):
    """One call: (kind, body) where kind is "output", "ops" or "error"."""
    ctx = Context(envelope)
    try:
        output = workflow(ctx, ctx.input)
    except _Reached as r:
        if not r.ops:
            return "error", {"code": "PLINTH_054", "message": f"the targeted step `{ctx._target}` was not reached"}
        return "ops", r.ops
    except _OrderChanged as e:
        return "error", {"code": "PLINTH_058", "message": e.message}
    if ctx._target is not None:
        return "error", {"code": "PLINTH_054", "message": f"the targeted step `{ctx._target}` was not reached"}
    return "output", output


def run_command(workflow):
    """A command handler: reads the envelope on stdin, prints the answer on stdout. An exception
    in the workflow (outside steps) exits 1, so Plinth retries the call by the run's policy."""
    envelope = json.load(sys.stdin)
    kind, body = handle(workflow, envelope)
    json.dump({kind: body}, sys.stdout)
    sys.stdout.write("\n")


def serve(workflow, host="127.0.0.1", port=9000):
    """An HTTP handler: POST the envelope; 200 with the output, 206 with the ops."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the name http.server asks for
            length = int(self.headers.get("content-length") or 0)
            try:
                envelope = json.loads(self.rfile.read(length))
                kind, body = handle(workflow, envelope)
                status, payload = {"output": (200, body), "ops": (206, {"ops": body}), "error": (409, {"error": body})}[kind]
            except Exception as e:  # noqa: BLE001 - a failed call is a 500, retried by Plinth
                traceback.print_exc(file=sys.stderr)
                status, payload = 500, {"message": str(e)}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.serve_forever()
