//! The call envelope a step function's handler gets: the run, the memo of its finished steps
//! in the order they were first reached, and the step a call targets.

use super::Step;
use crate::run::Run;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

/// The memo, serialized as one JSON object whose keys keep the steps' order.
struct Memo<'a>(&'a [Step]);

impl Serialize for Memo<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let done: Vec<(&str, Value)> = self.0.iter().filter_map(|st| st.memo().map(|m| (st.id.as_str(), m))).collect();
        let mut map = s.serialize_map(Some(done.len()))?;
        for (id, memo) in &done {
            map.serialize_entry(id, memo)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Ctx<'a> {
    target: Option<&'a str>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    run_id: &'a str,
    function: &'a str,
    attempt: u32,
    input: &'a Value,
    steps: Memo<'a>,
    ctx: Ctx<'a>,
}

/// The envelope as JSON bytes: `{"run_id","function","attempt","input","steps","ctx"}`.
/// `steps` must be in their stored order; unfinished steps are left out of the memo.
#[must_use]
pub fn build(run: &Run, attempt: u32, steps: &[Step], target: Option<&str>) -> Vec<u8> {
    let env = Envelope {
        run_id: &run.run_id,
        function: &run.function,
        attempt,
        input: &run.input,
        steps: Memo(steps),
        ctx: Ctx { target },
    };
    // Why: serializing JSON values and strings to a Vec cannot fail.
    serde_json::to_vec(&env).unwrap_or_default()
}

/// How many bytes the memo of these steps takes in an envelope.
#[must_use]
pub fn memo_bytes(steps: &[Step]) -> usize {
    serde_json::to_vec(&Memo(steps)).map_or(0, |v| v.len())
}
