"""The benchmark's app: one five-step function written twice, with Inngest's Python SDK and for
Plinth's native step protocol (plinth_steps.py), served by one FastAPI process so that only the
protocol differs."""

import fastapi
import inngest
import inngest.fast_api

import plinth_steps

client = inngest.Inngest(app_id="bench", is_production=False)


@client.create_function(fn_id="five", trigger=inngest.TriggerEvent(event="bench/five.asked"), retries=0)
async def five(ctx: inngest.Context) -> int:
    total = 0
    for i in range(5):
        total += await ctx.step.run(f"s{i}", lambda i=i: i)
    return total


def native_five(ctx, _input):
    total = 0
    for i in range(5):
        total += ctx.step(f"s{i}", lambda i=i: i)
    return total


app = fastapi.FastAPI()
inngest.fast_api.serve(app, client, [five])


@app.post("/native/five")
async def native(request: fastapi.Request) -> fastapi.Response:
    kind, body = plinth_steps.handle(native_five, await request.json())
    status, payload = {"output": (200, body), "ops": (206, {"ops": body}), "error": (409, {"error": body})}[kind]
    return fastapi.responses.JSONResponse(payload, status_code=status)
