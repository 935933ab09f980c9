//! Syncing Inngest apps. Plinth sends a `PUT` to an app's serve URL; the app registers its
//! functions with `POST /fn/register` on the Plinth its SDK points at (`INNGEST_DEV` or
//! `INNGEST_BASE_URL`) and passes that answer back as the answer to the `PUT`.
//!
//! `plinth serve` syncs the apps `inngest.apps` lists once it listens, retrying an app that is
//! down (1 s, doubling to 30 s) while `/health` says so; `plinth inngest sync` syncs them (or
//! `--app URL`) once and reports.

use plinth_core::component::Component;
use plinth_inngest::sign::SigningKey;
use plinth_server::apps::{InngestApps, SyncState};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The longest one sync may take: the app registers with Plinth before it answers.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The keys `inngest:` names, read from the environment at start-up.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    /// The event key `POST /e/{event_key}` takes (`event_key_env`).
    pub(crate) event: Option<String>,
    /// The apps' signing key (`signing_key_env`).
    pub(crate) signing: Option<Arc<SigningKey>>,
}

/// Reads the keys `inngest:` names through `lookup`.
///
/// # Errors
/// A named variable that is unset or empty, or a signing key that is not one (PLINTH_001).
pub(crate) fn keys(component: &Component, lookup: impl Fn(&str) -> Option<String>) -> Result<Keys, String> {
    let Some(section) = component.file.inngest.as_ref() else { return Ok(Keys::default()) };
    let code = plinth_core::Code::InvalidConfig;
    let read = |field: &str, name: Option<&str>| -> Result<Option<String>, String> {
        let Some(name) = name else { return Ok(None) };
        match lookup(name).filter(|v| !v.is_empty()) {
            Some(v) => Ok(Some(v)),
            None => Err(format!("{}: inngest.{field}: the variable `{name}` is not set ({code})", component.path.display())),
        }
    };
    let event = read("event_key_env", section.event_key_env.as_deref())?;
    let signing = match read("signing_key_env", section.signing_key_env.as_deref())? {
        Some(v) => Some(Arc::new(
            SigningKey::parse(&v).map_err(|e| format!("{}: inngest.signing_key_env: {e} ({code})", component.path.display()))?,
        )),
        None => None,
    };
    Ok(Keys { event, signing })
}

fn client() -> Result<reqwest::Client, String> {
    // Why: reqwest is built without a default crypto provider; ring is the one we ship.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("plinth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// Syncs the app at `url`, signing the request with `key` if set: whether its registration
/// changed anything, or why it failed.
pub(crate) async fn sync(client: &reqwest::Client, url: &str, key: Option<&SigningKey>) -> Result<bool, String> {
    let mut put = client.put(url).header("content-type", "application/json").body("{}");
    if let Some(key) = key {
        put = put.header("x-inngest-signature", key.sign_request(b"{}", plinth_core::timefmt::now_micros() / 1_000_000)?);
    }
    let resp = put.send().await.map_err(|e| {
        let mut msg = if e.is_connect() { "cannot connect to the app".to_string() } else { "the PUT failed".to_string() };
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        msg
    })?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("the app's answer was cut: {e}"))?;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(error) = v.get("error").and_then(Value::as_str) {
        return Err(format!("the registration was refused: {error}"));
    }
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).split_whitespace().collect::<Vec<_>>().join(" ");
        return Err(format!("the app answered {status}: {text}"));
    }
    match v.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(v.get("modified").and_then(Value::as_bool).unwrap_or(true)),
        _ => Err(format!(
            "the app answered {status} without a registration: is its SDK pointed at this Plinth (INNGEST_DEV or \
             INNGEST_BASE_URL)? it said: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )),
    }
}

/// Syncs every listed app in the background until it succeeds, recording each try for `/health`.
pub(crate) fn sync_listed(apps: Arc<InngestApps>, plinth_url: String) {
    let listed = apps.listed();
    if listed.is_empty() {
        return;
    }
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the client that syncs Inngest apps");
            return;
        }
    };
    for (url, _) in listed {
        let (apps, client, plinth_url) = (apps.clone(), client.clone(), plinth_url.clone());
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            loop {
                match sync(&client, &url, apps.signing().map(|k| &**k)).await {
                    Ok(modified) => {
                        tracing::info!(app = %url, modified, "Inngest app synced");
                        apps.synced(&url, SyncState::Synced);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(app = %url, plinth = %plinth_url, error = %e, retry_in_ms = wait.as_millis() as u64,
                            "cannot sync an Inngest app yet");
                        apps.synced(&url, SyncState::Failed(e));
                    }
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        });
    }
}

/// `plinth inngest sync`: syncs the apps once; exit 0 when all registered, 1 otherwise, 2 for
/// a usage error.
pub(crate) fn main(args: &crate::cli::InngestSyncArgs) -> std::process::ExitCode {
    let mut urls = args.app.clone();
    // Why: the component names the signing key even when --app names the apps.
    let component = match Component::load(&args.config) {
        Ok(c) => Some(c),
        Err(e) if urls.is_empty() => {
            eprintln!("plinth: {e}");
            return std::process::ExitCode::from(2);
        }
        Err(_) => None,
    };
    let keys = match component.as_ref().map(|c| keys(c, |name| std::env::var(name).ok())).transpose() {
        Ok(k) => k.unwrap_or_default(),
        Err(e) => {
            eprintln!("plinth: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if urls.is_empty() {
        urls = component.and_then(|c| c.file.inngest.map(|i| i.apps)).unwrap_or_default();
    }
    if urls.is_empty() {
        eprintln!("plinth: no app to sync: list them in `inngest.apps` of {} or give --app URL", args.config.display());
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("plinth: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("plinth: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for url in &urls {
        match runtime.block_on(sync(&client, url, keys.signing.as_deref())) {
            Ok(true) => println!("{url}: synced, functions updated"),
            Ok(false) => println!("{url}: synced, nothing changed"),
            Err(e) => {
                failed = true;
                println!("{url}: not synced: {e}");
            }
        }
    }
    if failed { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS }
}
