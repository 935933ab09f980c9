"""A platform component's workflows, written with the Inngest Python SDK and served by Plinth.

Nothing here knows about Plinth: the SDK is pointed at it (`INNGEST_DEV=http://127.0.0.1:8000`)
as it would be at an Inngest server. Plinth syncs the app, runs its functions as durable step
functions, and keeps their runs, steps and waits in its own store.
"""

import datetime
import logging
import os

import fastapi
import inngest
import inngest.fast_api
import structlog

structlog.configure(
    processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"), structlog.processors.JSONRenderer()],
    logger_factory=structlog.PrintLoggerFactory(),
)
log = structlog.get_logger("shop")

# Dev mode with INNGEST_DEV=<plinth URL>; otherwise production mode: INNGEST_BASE_URL=<plinth URL>
# and INNGEST_SIGNING_KEY, the key Plinth's `inngest.signing_key_env` names too.
client = inngest.Inngest(app_id="shop", logger=logging.getLogger("inngest"))


@client.create_function(fn_id="ship", trigger=inngest.TriggerEvent(event="shop/shipping.requested"))
async def ship(ctx: inngest.Context) -> dict:
    """Books a parcel; invoked by `order-flow`, or started by its own event."""
    parcel = await ctx.step.run("book-parcel", lambda: {"parcel": f"P-{ctx.event.data['order']}"})
    return parcel


@client.create_function(
    fn_id="order-flow",
    trigger=inngest.TriggerEvent(event="shop/order.created"),
    retries=2,
    cancel=[inngest.Cancel(event="shop/order.cancelled", if_exp="async.data.order == event.data.order")],
)
async def order_flow(ctx: inngest.Context) -> dict:
    """Reserves stock, waits a moment, waits for an approval (or gives up), then ships."""
    order = ctx.event.data["order"]

    def reserve() -> dict:
        log.info("stock reserved", order=order, run_id=ctx.run_id)
        return {"order": order, "reserved": True}

    reserved = await ctx.step.run("reserve", reserve)
    await ctx.step.sleep("cool-off", datetime.timedelta(seconds=1))
    approval = await ctx.step.wait_for_event(
        "approval",
        event="shop/order.approved",
        if_exp="async.data.order == event.data.order",
        timeout=datetime.timedelta(seconds=int(ctx.event.data.get("approve_within_s", 60))),
    )
    if approval is None:
        return {"order": order, "reserved": reserved, "approved": False}
    parcel = await ctx.step.invoke("ship", function=ship, data={"order": order})
    return {"order": order, "reserved": reserved, "approved": True, "by": approval.data.get("by"), "parcel": parcel}


@client.create_function(fn_id="receipt", trigger=inngest.TriggerEvent(event="shop/order.created"))
async def receipt(ctx: inngest.Context) -> str:
    """The same event fans out: a receipt goes out for every order."""
    return await ctx.step.run("mail", lambda: f"receipt for {ctx.event.data['order']}")


@client.create_function(fn_id="sync-stock", trigger=inngest.TriggerEvent(event="shop/stock.sync"), retries=1)
async def sync_stock(ctx: inngest.Context) -> dict:
    """A step that fails on its first try is retried; one that always fails reaches the function."""

    def flaky() -> str:
        if ctx.attempt == 0:
            raise RuntimeError("the warehouse timed out")
        return "synced"

    def broken() -> str:
        raise RuntimeError("the warehouse is closed")

    first = await ctx.step.run("flaky", flaky)
    try:
        await ctx.step.run("broken", broken)
    except inngest.StepError as err:
        return {"first": first, "caught": err.message}
    return {"first": first, "caught": None}


@client.create_function(fn_id="refund", trigger=inngest.TriggerEvent(event="shop/refund.asked"))
async def refund(ctx: inngest.Context) -> None:
    """Refuses for good: no retry."""
    raise inngest.NonRetriableError("refunds need a human")


@client.create_function(fn_id="restock", trigger=inngest.TriggerEvent(event="shop/restock.asked"), retries=2)
async def restock(ctx: inngest.Context) -> str:
    """Says when to try again: the next attempt waits for it (Retry-After)."""
    if ctx.attempt == 0:
        raise inngest.RetryAfterError("the supplier is busy", retry_after=datetime.timedelta(seconds=2))
    return "restocked"


@client.create_function(fn_id="nightly-report", trigger=inngest.TriggerCron(cron="TZ=Europe/Paris 0 3 * * *"))
async def nightly_report(ctx: inngest.Context) -> str:
    """A schedule: Plinth fires it at 03:00 Paris time."""
    return await ctx.step.run("report", lambda: "report sent")


app = fastapi.FastAPI()
inngest.fast_api.serve(app, client, [ship, order_flow, receipt, sync_stock, refund, restock, nightly_report])


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok", "plinth": os.environ.get("INNGEST_DEV") or os.environ.get("INNGEST_BASE_URL")}
