"""The checkout workflow as a Python step function: reserve stock, wait up to 7 days for the
order's approval, charge, send the receipt. Run as a command handler (`python3 checkout.py`)
or an HTTP handler (`python3 checkout.py --serve 9000`)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plinth_steps  # noqa: E402 - the helper sits next to this file


def checkout(ctx, order):
    stock = ctx.step("reserve", lambda: {"reserved": order.get("items", [])})
    approval = ctx.wait_for_event(
        "approval", "shop/order.approved", if_="event.data.order == run.input.order", timeout=order.get("approve_within", "7d")
    )
    if approval is None:
        return {"order": order["order"], "status": "expired"}
    charge = ctx.step("charge", lambda: {"charged": order.get("amount", 0), "by": approval["data"].get("by")})
    ctx.send_event("receipt", {"name": "shop/receipt.sent", "data": {"order": order["order"]}})
    return {"order": order["order"], "status": "paid", "stock": stock, "charge": charge}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        plinth_steps.serve(checkout, port=int(sys.argv[2]))
    else:
        plinth_steps.run_command(checkout)
