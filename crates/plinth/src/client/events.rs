//! `plinth events send|list|show` and `plinth schedules`.

use super::api::{Api, Failure};
use super::{EXIT_USAGE, read_input, render};
use crate::cli::{ClientArgs, EventsCommand};
use serde_json::{Value, json};

pub(super) async fn events(command: &EventsCommand) -> Result<u8, Failure> {
    match command {
        EventsCommand::Send(a) => {
            let data = read_input(a.data.as_deref())?;
            if !data.is_object() {
                return Err(Failure::new(EXIT_USAGE, "--data must be a JSON object"));
            }
            let mut event = json!({"name": a.name, "data": data});
            if let Some(id) = &a.id {
                event["id"] = Value::String(id.clone());
            }
            let answer = Api::new(&a.client)?.send_event(&event).await?;
            if a.client.json {
                println!("{answer}");
            } else {
                let id = answer["event_ids"][0].as_str().unwrap_or_default();
                let runs: Vec<&str> = answer["run_ids"][0].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                println!("{id}");
                for run in runs {
                    println!("started {run}");
                }
            }
            Ok(0)
        }
        EventsCommand::List(a) => {
            let mut query = vec![("limit", a.limit.to_string())];
            for (k, v) in [("name", &a.name), ("since", &a.since), ("cursor", &a.cursor)] {
                if let Some(v) = v {
                    query.push((k, v.clone()));
                }
            }
            let page = Api::new(&a.client)?.events(&query).await?;
            if a.client.json {
                println!("{page}");
            } else {
                print!("{}", render::event_table(&page));
            }
            Ok(0)
        }
        EventsCommand::Show(a) => {
            let event = Api::new(&a.client)?.event(&a.id).await?;
            if a.client.json {
                println!("{event}");
            } else {
                print!("{}", render::event_detail(&event));
            }
            Ok(0)
        }
    }
}

pub(super) async fn schedules(args: &ClientArgs) -> Result<u8, Failure> {
    let functions = Api::new(args)?.functions().await?;
    if args.json {
        let schedules: Vec<Value> = functions["functions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f.get("schedule").is_some())
            .map(|f| json!({"function": f["name"], "triggers": f["triggers"], "schedule": f["schedule"]}))
            .collect();
        println!("{}", json!({ "schedules": schedules }));
    } else {
        print!("{}", render::schedule_table(&functions));
    }
    Ok(0)
}
