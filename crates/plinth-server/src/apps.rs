//! The Inngest apps registered with this node. An app's functions join the component the node
//! serves (`component.yaml`'s own functions stay first); a new registration of the same app
//! replaces its functions. Every change is validated as a whole component before it is served,
//! so an app cannot register a function whose name is taken or whose options do not hold.
//!
//! Registrations live in memory: after a restart, the apps listed in `inngest.apps` are synced
//! again at start-up; an app not listed registers again when it is next synced.

use plinth_core::component::{Component, ComponentFile, InngestHandler, Live};
use plinth_core::{FunctionSpec, HandlerSpec};
use plinth_inngest::register::{Mapped, Refused, RegisterRequest, map_all};
use plinth_inngest::sign::SigningKey;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

/// How a listed app's sync stands, for `/health`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Not synced yet.
    Pending,
    /// Registered its functions.
    Synced,
    /// The last try failed, with why.
    Failed(String),
}

/// The apps and the component they extend.
pub struct InngestApps {
    live: Arc<Live>,
    base: ComponentFile,
    path: PathBuf,
    base_dir: PathBuf,
    /// Each app's functions, by app id.
    apps: Mutex<BTreeMap<String, Vec<FunctionSpec>>>,
    /// The apps `inngest.apps` lists, by URL.
    listed: Mutex<BTreeMap<String, SyncState>>,
    /// The apps' signing key (`inngest.signing_key_env`), if set.
    signing: Option<Arc<SigningKey>>,
}

impl InngestApps {
    /// The registry of a node serving `live`; its current component is the base the apps extend.
    #[must_use]
    pub fn new(live: Arc<Live>) -> Self {
        let now = live.get();
        let listed = now.file.inngest.as_ref().map(|i| i.apps.iter().map(|u| (u.clone(), SyncState::Pending)).collect());
        Self {
            base: now.file.clone(),
            path: now.path.clone(),
            base_dir: now.base_dir.clone(),
            live,
            apps: Mutex::new(BTreeMap::new()),
            listed: Mutex::new(listed.unwrap_or_default()),
            signing: None,
        }
    }

    /// The same, with the apps' signing key: registrations must carry its Bearer hash, and
    /// syncs are signed with it.
    #[must_use]
    pub fn with_signing(mut self, key: Option<Arc<SigningKey>>) -> Self {
        self.signing = key;
        self
    }

    /// The apps' signing key, if set.
    #[must_use]
    pub fn signing(&self) -> Option<&Arc<SigningKey>> {
        self.signing.as_ref()
    }

    /// Serves the app's functions in place of those it registered before; whether anything
    /// changed.
    ///
    /// # Errors
    /// The option that cannot be served (its path in the request) and why; nothing changes.
    pub fn register(&self, req: &RegisterRequest) -> Result<bool, Refused> {
        let specs: Vec<FunctionSpec> = map_all(req)?.into_iter().map(spec).collect();
        let mut apps = self.apps.lock().unwrap_or_else(PoisonError::into_inner);
        if apps.get(&req.appname) == Some(&specs) {
            return Ok(false);
        }
        let mut next = apps.clone();
        next.insert(req.appname.clone(), specs);
        let mut file = self.base.clone();
        let own = file.functions.len();
        file.functions.extend(next.values().flatten().cloned());
        let source = format!("the functions of Inngest app `{}`", req.appname);
        let component = Component::from_file(file, &source, self.path.clone(), self.base_dir.clone()).map_err(|e| {
            // Why: the app's functions follow the file's own; point at the app's list instead.
            let field = renumber(&e.field, own, &next, &req.appname);
            Refused { field, reason: e.reason }
        })?;
        *apps = next;
        self.live.set(component);
        Ok(true)
    }

    /// Records how the sync of the listed app at `url` went.
    pub fn synced(&self, url: &str, state: SyncState) {
        self.listed.lock().unwrap_or_else(PoisonError::into_inner).insert(url.to_string(), state);
    }

    /// The listed apps and how their syncs stand.
    #[must_use]
    pub fn listed(&self) -> Vec<(String, SyncState)> {
        self.listed.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(u, s)| (u.clone(), s.clone())).collect()
    }

    /// The ids of the apps registered, with their functions' names.
    #[must_use]
    pub fn registered(&self) -> Vec<(String, Vec<String>)> {
        let apps = self.apps.lock().unwrap_or_else(PoisonError::into_inner);
        apps.iter().map(|(id, fns)| (id.clone(), fns.iter().map(|f| f.name.clone()).collect())).collect()
    }
}

/// A mapped function as the component declares it.
fn spec(m: Mapped) -> FunctionSpec {
    FunctionSpec {
        name: m.name,
        description: m.display_name,
        handler: HandlerSpec { inngest: Some(InngestHandler { url: m.url }), ..HandlerSpec::default() },
        input_schema: None,
        policy: m.policy,
        triggers: m.triggers,
        steps: true,
    }
}

/// `functions[N].x` of the merged component as `functions[i].x` of the app's own request, when
/// N is one of its functions; other fields as they are.
fn renumber(field: &str, own: usize, apps: &BTreeMap<String, Vec<FunctionSpec>>, app: &str) -> String {
    let Some(rest) = field.strip_prefix("functions[") else { return field.to_string() };
    let Some((n, tail)) = rest.split_once(']') else { return field.to_string() };
    let Ok(n) = n.parse::<usize>() else { return field.to_string() };
    let mut start = own;
    for (id, fns) in apps {
        if id == app && (start..start + fns.len()).contains(&n) {
            return format!("functions[{}]{tail}", n - start);
        }
        start += fns.len();
    }
    field.to_string()
}
