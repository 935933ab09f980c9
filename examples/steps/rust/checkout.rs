//! The checkout workflow as an in-process Rust step function: reserve stock, wait up to 7 days
//! for the order's approval, charge, send the receipt. Each step's result is committed before
//! the code after it runs; the function is entered again from the top only after a wait.
//!
//! Run it (from the workspace root):
//!   cargo run -p plinth --example checkout -- serve --config examples/steps/rust/component.yaml

use plinth::{HandlerContext, HandlerError, Handlers};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Deserialize)]
struct Order {
    order: String,
    #[serde(default)]
    items: Vec<String>,
    #[serde(default)]
    amount: u64,
}

#[derive(Serialize, Deserialize)]
struct Charge {
    charged: u64,
    by: Value,
}

/// The workflow.
pub(crate) async fn checkout(ctx: HandlerContext, input: Value) -> Result<Value, HandlerError> {
    let order: Order = serde_json::from_value(input).map_err(|e| HandlerError::fatal(format!("not an order: {e}")))?;
    let stock: Vec<String> = ctx.step("reserve", async { Ok(order.items.clone()) }).await?;
    let cond = "event.data.order == run.input.order";
    let week = Duration::from_secs(7 * 24 * 3600);
    let Some(approval) = ctx.wait_for_event("approval", "shop/order.approved", Some(cond), Some(week)).await? else {
        return Ok(json!({"order": order.order, "status": "expired"}));
    };
    let charge: Charge =
        ctx.step("charge", async { Ok(Charge { charged: order.amount, by: approval["data"]["by"].clone() }) }).await?;
    ctx.send_event("receipt", json!({"name": "shop/receipt.sent", "data": {"order": order.order}})).await?;
    Ok(json!({"order": order.order, "status": "paid", "stock": {"reserved": stock}, "charge": charge}))
}

/// The handlers this component registers.
#[must_use]
pub(crate) fn handlers() -> Handlers {
    let mut handlers = Handlers::builtin();
    handlers.register("checkout", checkout);
    handlers
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    plinth::run_cli(handlers())
}
