//! MLflow experiment tracking over MLflow's REST API (2.0), for teams that
//! already track their experiments there.
//!
//! When `MLFLOW_TRACKING_URI` names an MLflow tracking server, every training
//! run ([`crate::registry::train`] and the retrain in
//! [`crate::pipeline::retrain`]) also becomes an MLflow run in the experiment
//! `cinematch` (or `$MLFLOW_EXPERIMENT_NAME`), created if missing: the
//! hyperparameters and seed as params, the evaluation metrics (`rmse`, `mae`,
//! `precision_at_10`, the full-catalogue metrics, `data_size`, timings) as
//! metrics, and tags with the CineMatch model version (`cinematch.model_version`),
//! the kind of run (`cinematch.kind`: `train` or `retrain`) and the outcome.
//! The MLflow run is named after the model version.
//!
//! The `model_version` written to `model_metrics` then carries the MLflow run
//! id, as the spec's column describes: `run_<mlflow run id>_v<N>` (the run id
//! is MLflow's 32 hex digits), where an untracked run is `run_<12 random hex
//! digits>_v<N>`.
//!
//! Tracking never fails a training: an unreachable server, a refused request
//! or an unusable URI is a `tracing` warning (without credentials), the model
//! is trained and recorded anyway, and its `model_version` falls back to the
//! untracked format when no MLflow run could be created. Requests have short
//! timeouts ([`MlflowConfig::timeout`]).
//!
//! Only `http://` and `https://` tracking URIs are supported (not local
//! `file:` stores or `databricks` profiles). HTTPS verifies the server against
//! the system's roots, or `MLFLOW_TRACKING_SERVER_CERT_PATH` when set.
//! Credentials come from `MLFLOW_TRACKING_TOKEN` (bearer) or
//! `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD` (basic), as
//! MLflow's own client reads them.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The variable that turns tracking on.
pub const ENV_TRACKING_URI: &str = "MLFLOW_TRACKING_URI";
/// Overrides the experiment name (MLflow's own variable).
pub const ENV_EXPERIMENT_NAME: &str = "MLFLOW_EXPERIMENT_NAME";
/// The experiment CineMatch runs go to by default.
pub const DEFAULT_EXPERIMENT: &str = "cinematch";
/// The tag that holds the CineMatch model version of an MLflow run.
pub const TAG_MODEL_VERSION: &str = "cinematch.model_version";
/// The tag that says what kind of training made the run (`train`, `retrain`).
pub const TAG_KIND: &str = "cinematch.kind";

/// Where and how to reach an MLflow tracking server.
#[derive(Clone, PartialEq)]
pub struct MlflowConfig {
    /// `http(s)://host[:port][/prefix]` of the tracking server.
    pub tracking_uri: String,
    pub experiment: String,
    /// Bearer token (`MLFLOW_TRACKING_TOKEN`).
    pub token: Option<String>,
    /// Basic auth (`MLFLOW_TRACKING_USERNAME`, `MLFLOW_TRACKING_PASSWORD`).
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM CA bundle for HTTPS (`MLFLOW_TRACKING_SERVER_CERT_PATH`).
    pub ca_cert: Option<PathBuf>,
    /// Upper bound for one request, connecting included.
    pub timeout: Duration,
    /// The registered model whose alias `champion` follows promotions
    /// (`CINEMATCH_MLFLOW_MODEL`, default [`REGISTERED_MODEL`]).
    pub registered_model: String,
}

impl fmt::Debug for MlflowConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlflowConfig")
            .field("tracking_uri", &display_uri(&self.tracking_uri))
            .field("experiment", &self.experiment)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_cert", &self.ca_cert)
            .field("timeout", &self.timeout)
            .field("registered_model", &self.registered_model)
            .finish()
    }
}

impl MlflowConfig {
    /// A server at `tracking_uri`, experiment `cinematch`, no credentials,
    /// 5 s per request.
    pub fn new(tracking_uri: impl Into<String>) -> MlflowConfig {
        MlflowConfig {
            tracking_uri: tracking_uri.into(),
            experiment: DEFAULT_EXPERIMENT.to_string(),
            token: None,
            username: None,
            password: None,
            ca_cert: None,
            timeout: Duration::from_secs(5),
            registered_model: REGISTERED_MODEL.to_string(),
        }
    }

    /// From `MLFLOW_TRACKING_URI` and MLflow's other client variables;
    /// `None` when the URI is unset or empty (tracking off).
    pub fn from_env() -> Option<MlflowConfig> {
        MlflowConfig::from_env_with(|k| std::env::var(k).ok())
    }

    /// [`MlflowConfig::from_env`] with an injectable environment.
    pub fn from_env_with(env: impl Fn(&str) -> Option<String>) -> Option<MlflowConfig> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let uri = get(ENV_TRACKING_URI)?;
        let mut cfg = MlflowConfig::new(uri.trim());
        if let Some(name) = get(ENV_EXPERIMENT_NAME) {
            cfg.experiment = name;
        }
        cfg.token = get("MLFLOW_TRACKING_TOKEN");
        cfg.username = get("MLFLOW_TRACKING_USERNAME");
        cfg.password = get("MLFLOW_TRACKING_PASSWORD");
        cfg.ca_cert = get("MLFLOW_TRACKING_SERVER_CERT_PATH").map(PathBuf::from);
        if let Some(name) = get("CINEMATCH_MLFLOW_MODEL") {
            cfg.registered_model = name;
        }
        Some(cfg)
    }

    /// The tracking URI without credentials, query or fragment, for messages.
    pub fn display_uri(&self) -> String {
        display_uri(&self.tracking_uri)
    }
}

/// `scheme://host[:port][/path]` of `uri`: user info, query and fragment,
/// which may hold credentials, are dropped.
fn display_uri(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(u) if u.has_host() => {
            let mut s = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
            if let Some(p) = u.port() {
                s.push_str(&format!(":{p}"));
            }
            s.push_str(u.path().trim_end_matches('/'));
            s
        }
        Ok(u) => format!("{}:…", u.scheme()),
        Err(_) => "(unparsable URI)".to_string(),
    }
}

/// Why an MLflow request failed. Messages never contain credentials.
#[derive(Debug)]
pub enum TrackingError {
    /// The URI or credentials are unusable; nothing was sent.
    Config(String),
    /// No answer: refused, unreachable, timed out, TLS failure.
    Transport(String),
    /// The server answered with an error.
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server answered with something that is not MLflow's API.
    Protocol(String),
}

impl fmt::Display for TrackingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrackingError::Config(m) => write!(f, "{m}"),
            TrackingError::Transport(m) => write!(f, "server unreachable: {m}"),
            TrackingError::Api {
                status,
                code,
                message,
            } => {
                write!(f, "HTTP {status}")?;
                if !code.is_empty() {
                    write!(f, " {code}")?;
                }
                write!(f, ": {message}")
            }
            TrackingError::Protocol(m) => write!(f, "unexpected answer: {m}"),
        }
    }
}

impl std::error::Error for TrackingError {}

type TResult<T> = std::result::Result<T, TrackingError>;

/// A blocking client for MLflow's REST API.
pub struct MlflowClient {
    agent: ureq::Agent,
    /// `scheme://host[:port][/prefix]`, without credentials.
    base: String,
    authorization: Option<String>,
}

impl MlflowClient {
    pub fn new(cfg: &MlflowConfig) -> TResult<MlflowClient> {
        let mut url = url::Url::parse(cfg.tracking_uri.trim())
            .map_err(|e| TrackingError::Config(format!("{ENV_TRACKING_URI} is not a URL ({e})")))?;
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(TrackingError::Config(format!(
                    "{ENV_TRACKING_URI} has the scheme {other:?}: CineMatch talks to an MLflow \
                     tracking server over http:// or https:// only (start one with `mlflow server`)"
                )))
            }
        };
        if !url.has_host() {
            return Err(TrackingError::Config(format!(
                "{ENV_TRACKING_URI} names no host"
            )));
        }
        // Credentials in the URI are used as basic auth (unless the
        // variables give some) and never sent or shown as part of it.
        let uri_user = (!url.username().is_empty()).then(|| percent_decode(url.username()));
        let uri_pass = url.password().map(percent_decode);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        let base = url.as_str().trim_end_matches('/').to_string();

        let authorization = if let Some(t) = &cfg.token {
            Some(format!("Bearer {t}"))
        } else {
            let user = cfg.username.clone().or(uri_user);
            let pass = cfg.password.clone().or(uri_pass);
            user.map(|u| {
                format!(
                    "Basic {}",
                    base64(format!("{u}:{}", pass.unwrap_or_default()).as_bytes())
                )
            })
        };

        let connect = cfg.timeout.min(Duration::from_secs(3));
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(connect))
            .timeout_global(Some(cfg.timeout))
            .user_agent(concat!("cinematch/", env!("CARGO_PKG_VERSION")));
        if https {
            builder = builder.tls_config(tls_config(cfg)?);
        }
        Ok(MlflowClient {
            agent: ureq::Agent::new_with_config(builder.build()),
            base,
            authorization,
        })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.base)
    }

    /// `GET /api/2.0/mlflow/{path}?query`.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> TResult<Value> {
        let mut url = self.endpoint(path);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.extend(url::form_urlencoded::byte_serialize(k.as_bytes()));
            url.push('=');
            url.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
        }
        let mut req = self.agent.get(&url);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        answer(req.call())
    }

    /// `POST /api/2.0/mlflow/{path}` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> TResult<Value> {
        let mut req = self
            .agent
            .post(self.endpoint(path))
            .header("Content-Type", "application/json");
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        answer(req.send(body.to_string()))
    }

    /// The id of experiment `name`, created when missing.
    pub fn experiment_id(&self, name: &str) -> TResult<String> {
        match self.get("experiments/get-by-name", &[("experiment_name", name)]) {
            Ok(v) => {
                let exp = &v["experiment"];
                if exp["lifecycle_stage"].as_str() == Some("deleted") {
                    return Err(TrackingError::Config(format!(
                        "the MLflow experiment {name:?} is deleted: restore it \
                         (`mlflow experiments restore`) or set {ENV_EXPERIMENT_NAME}"
                    )));
                }
                return string_field(exp, "experiment_id");
            }
            Err(TrackingError::Api { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => {}
            Err(e) => return Err(e),
        }
        match self.post("experiments/create", &json!({ "name": name })) {
            Ok(v) => string_field(&v, "experiment_id"),
            // Created concurrently by another process: look it up again.
            Err(TrackingError::Api { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => {
                let v = self.get("experiments/get-by-name", &[("experiment_name", name)])?;
                string_field(&v["experiment"], "experiment_id")
            }
            Err(e) => Err(e),
        }
    }
}

fn answer(res: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> TResult<Value> {
    let resp = res.map_err(|e| TrackingError::Transport(e.to_string()))?;
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .read_to_string()
        .map_err(|e| TrackingError::Transport(e.to_string()))?;
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    if (200..300).contains(&status) {
        return parsed.ok_or_else(|| {
            TrackingError::Protocol(format!("HTTP {status} with a body that is not JSON"))
        });
    }
    let (code, message) = match &parsed {
        Some(v) => (
            v["error_code"].as_str().unwrap_or("").to_string(),
            v["message"].as_str().unwrap_or("").to_string(),
        ),
        None => (String::new(), snippet(&text)),
    };
    Err(TrackingError::Api {
        status,
        code,
        message,
    })
}

fn snippet(text: &str) -> String {
    let t: String = text.trim().chars().take(200).collect();
    if t.is_empty() {
        "(no body)".to_string()
    } else {
        t
    }
}

fn string_field(v: &Value, key: &str) -> TResult<String> {
    match &v[key] {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(TrackingError::Protocol(format!("no {key} in the answer"))),
    }
}

fn tls_config(cfg: &MlflowConfig) -> TResult<ureq::tls::TlsConfig> {
    use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
    // The same provider the PostgreSQL connections use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots: Vec<Certificate<'static>> = match &cfg.ca_cert {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                TrackingError::Config(format!(
                    "cannot read MLFLOW_TRACKING_SERVER_CERT_PATH {}: {e}",
                    path.display()
                ))
            })?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(TrackingError::Config(format!(
                    "MLFLOW_TRACKING_SERVER_CERT_PATH {} holds no PEM certificate",
                    path.display()
                )));
            }
            certs
        }
        None => rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
    };
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&roots))
        .build())
}

/// `%XX` escapes of a URI's user info, decoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (for the basic auth header).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// MLflow params: key, value.
pub type MlflowParams = Vec<(String, String)>;
/// MLflow metrics: key, value.
pub type MlflowMetrics = Vec<(String, f64)>;

/// The MLflow registered model whose alias [`CHAMPION_ALIAS`] follows the
/// CineMatch champion.
pub const REGISTERED_MODEL: &str = "cinematch";
/// The alias a promotion sets.
pub const CHAMPION_ALIAS: &str = "champion";

/// Points the alias `champion` of the registered model
/// (`cfg.registered_model`, created when missing) at a new model version
/// made from the MLflow run `run_id`, tagged with the CineMatch
/// `model_version`. Deployments that serve from MLflow's registry then
/// follow CineMatch's promotions. Like all tracking, a failure is a warning.
pub fn set_champion_alias(cfg: &MlflowConfig, run_id: &str, model_version: &str) {
    let name = cfg.registered_model.as_str();
    let result = (|| -> TResult<String> {
        let client = MlflowClient::new(cfg)?;
        match client.post("registered-models/create", &json!({ "name": name })) {
            Ok(_) => {}
            Err(TrackingError::Api { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => {}
            Err(e) => return Err(e),
        }
        let run = client.get("runs/get", &[("run_id", run_id)])?;
        let artifacts = string_field(&run["run"]["info"], "artifact_uri")?;
        let v = client.post(
            "model-versions/create",
            &json!({
                "name": name,
                "source": format!("{artifacts}/model"),
                "run_id": run_id,
                "tags": [{"key": TAG_MODEL_VERSION, "value": model_version}],
            }),
        )?;
        let version = string_field(&v["model_version"], "version")?;
        client.post(
            "registered-models/alias",
            &json!({"name": name, "alias": CHAMPION_ALIAS, "version": version}),
        )?;
        Ok(version)
    })();
    match result {
        Ok(version) => {
            tracing::info!("MLflow: {name}@{CHAMPION_ALIAS} -> version {version} ({model_version})")
        }
        Err(e) => tracing::warn!(
            "MLflow at {}: could not set {name}@{CHAMPION_ALIAS} to {model_version}: {e}",
            cfg.display_uri()
        ),
    }
}

/// How an MLflow run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Finished,
    Failed,
}

/// One MLflow run of one CineMatch training, from start to end.
///
/// Every method warns instead of failing. After a transport failure (the
/// server went away) the remaining calls are skipped, so a dead server costs
/// one timeout, not one per call. A tracker dropped without [`finish`]
/// (an error returned early) ends its run as `FAILED`.
///
/// [`finish`]: RunTracker::finish
pub struct RunTracker {
    inner: Option<Active>,
}

struct Active {
    client: MlflowClient,
    run_id: String,
    experiment_id: String,
    shown_uri: String,
    broken: bool,
}

impl RunTracker {
    /// No tracking.
    pub fn off() -> RunTracker {
        RunTracker { inner: None }
    }

    /// Creates an MLflow run (experiment created when missing) with `tags`,
    /// or warns and tracks nothing when `cfg` is set but MLflow fails.
    pub fn start(cfg: Option<&MlflowConfig>, tags: &[(&str, String)]) -> RunTracker {
        let Some(cfg) = cfg else {
            return RunTracker::off();
        };
        let shown_uri = cfg.display_uri();
        let started = (|| -> TResult<Active> {
            let client = MlflowClient::new(cfg)?;
            let experiment_id = client.experiment_id(&cfg.experiment)?;
            let mut all: Vec<Value> =
                vec![json!({"key": "mlflow.source.name", "value": "cinematch"})];
            if let Ok(user) = std::env::var("USER") {
                all.push(json!({"key": "mlflow.user", "value": user}));
            }
            all.extend(tags.iter().map(|(k, v)| json!({"key": k, "value": v})));
            let v = client.post(
                "runs/create",
                &json!({
                    "experiment_id": experiment_id,
                    "start_time": now_ms(),
                    "tags": all,
                }),
            )?;
            let info = &v["run"]["info"];
            let run_id =
                string_field(info, "run_id").or_else(|_| string_field(info, "run_uuid"))?;
            Ok(Active {
                client,
                run_id,
                experiment_id,
                shown_uri: shown_uri.clone(),
                broken: false,
            })
        })();
        match started {
            Ok(active) => {
                tracing::info!(
                    mlflow_run = %active.run_id,
                    experiment = %cfg.experiment,
                    "tracking this training in MLflow at {shown_uri}"
                );
                RunTracker {
                    inner: Some(active),
                }
            }
            Err(e) => {
                tracing::warn!(
                    "MLflow tracking at {shown_uri} failed, training continues without it: \
                     cannot create a run in experiment {:?}: {e}",
                    cfg.experiment
                );
                RunTracker::off()
            }
        }
    }

    /// Whether an MLflow run exists for this training.
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// The MLflow run id, if a run was created.
    pub fn run_id(&self) -> Option<&str> {
        self.inner.as_ref().map(|a| a.run_id.as_str())
    }

    pub fn experiment_id(&self) -> Option<&str> {
        self.inner.as_ref().map(|a| a.experiment_id.as_str())
    }

    /// The run id when it can stand in a model version (`run_<id>_v<N>` must
    /// fit `VARCHAR(50)` and parse back): up to 36 letters, digits or dashes.
    /// MLflow's ids are 32 hex digits.
    pub fn run_id_for_version(&self) -> Option<String> {
        let id = self.run_id()?;
        let ok = !id.is_empty()
            && id.len() <= 36
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            tracing::warn!(
                "the MLflow run id {id:?} does not fit a CineMatch model version; \
                 the model version gets a random run id, the MLflow run's tag names it"
            );
        }
        ok.then(|| id.to_string())
    }

    /// Logs params, metrics and tags in one `runs/log-batch`. Non-finite
    /// metrics are left out (JSON cannot carry them).
    pub fn log(
        &mut self,
        params: &[(String, String)],
        metrics: &[(String, f64)],
        tags: &[(&str, String)],
    ) {
        let ts = now_ms();
        let body = |a: &Active| {
            json!({
                "run_id": a.run_id,
                "params": params.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
                "metrics": metrics
                    .iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| json!({"key": k, "value": v, "timestamp": ts, "step": 0}))
                    .collect::<Vec<_>>(),
                "tags": tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
            })
        };
        self.call("log params and metrics", |a| {
            a.client.post("runs/log-batch", &body(a)).map(drop)
        });
    }

    /// Logs metrics measured at steps (`(key, step, value)`: a backtest's
    /// weeks), in one `runs/log-batch`, so MLflow charts them over the
    /// steps. Non-finite values are left out.
    pub fn log_steps(&mut self, metrics: &[(String, i64, f64)]) {
        let ts = now_ms();
        let body = |a: &Active| {
            json!({
                "run_id": a.run_id,
                "metrics": metrics
                    .iter()
                    .filter(|(_, _, v)| v.is_finite())
                    .map(|(k, step, v)| json!({"key": k, "value": v, "timestamp": ts, "step": step}))
                    .collect::<Vec<_>>(),
            })
        };
        self.call("log metrics by step", |a| {
            a.client.post("runs/log-batch", &body(a)).map(drop)
        });
    }

    /// `runs/set-tag`.
    pub fn set_tag(&mut self, key: &str, value: &str) {
        self.call("set a tag", |a| {
            a.client
                .post(
                    "runs/set-tag",
                    &json!({"run_id": a.run_id, "key": key, "value": value}),
                )
                .map(drop)
        });
    }

    /// Ends the run (`runs/update`), named `run_name` when given.
    pub fn finish(mut self, status: RunStatus, run_name: Option<&str>) {
        self.end(status, run_name);
    }

    fn end(&mut self, status: RunStatus, run_name: Option<&str>) {
        let status = match status {
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
        };
        self.call("end the run", |a| {
            let mut body = json!({"run_id": a.run_id, "status": status, "end_time": now_ms()});
            if let Some(name) = run_name {
                body["run_name"] = json!(name);
            }
            a.client.post("runs/update", &body).map(drop)
        });
        self.inner = None;
    }

    fn call(&mut self, what: &str, f: impl FnOnce(&Active) -> TResult<()>) {
        let Some(a) = self.inner.as_mut() else {
            return;
        };
        if a.broken {
            return;
        }
        if let Err(e) = f(a) {
            tracing::warn!(
                mlflow_run = %a.run_id,
                "MLflow tracking at {} failed, training continues without it: cannot {what}: {e}",
                a.shown_uri
            );
            if matches!(e, TrackingError::Transport(_)) {
                a.broken = true;
            }
        }
    }
}

impl Drop for RunTracker {
    fn drop(&mut self) {
        if self.inner.is_some() {
            self.end(RunStatus::Failed, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_turns_tracking_on_and_reads_mlflow_variables() {
        assert!(MlflowConfig::from_env_with(|_| None).is_none());
        assert!(MlflowConfig::from_env_with(|_| Some("  ".into())).is_none());
        let cfg = MlflowConfig::from_env_with(|k| match k {
            "MLFLOW_TRACKING_URI" => Some("http://127.0.0.1:5000".into()),
            "MLFLOW_TRACKING_TOKEN" => Some("s3cret".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.tracking_uri, "http://127.0.0.1:5000");
        assert_eq!(cfg.experiment, "cinematch");
        assert_eq!(cfg.token.as_deref(), Some("s3cret"));
        assert!(!format!("{cfg:?}").contains("s3cret"));
        let named = MlflowConfig::from_env_with(|k| match k {
            "MLFLOW_TRACKING_URI" => Some("https://mlflow.example".into()),
            "MLFLOW_EXPERIMENT_NAME" => Some("recs".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(named.experiment, "recs");
    }

    #[test]
    fn uris_are_shown_without_credentials() {
        assert_eq!(
            display_uri("https://bob:hunter2@mlflow.example:8443/prefix/?token=abc#x"),
            "https://mlflow.example:8443/prefix"
        );
        assert_eq!(
            display_uri("http://127.0.0.1:5000"),
            "http://127.0.0.1:5000"
        );
        assert!(!display_uri("not a url hunter2").contains("hunter2"));
    }

    #[test]
    fn unsupported_uris_are_configuration_errors() {
        for uri in ["file:///tmp/mlruns", "databricks", "./mlruns", "ftp://h/x"] {
            match MlflowClient::new(&MlflowConfig::new(uri)) {
                Err(TrackingError::Config(m)) => assert!(m.contains("MLFLOW_TRACKING_URI"), "{m}"),
                Err(e) => panic!("{uri}: {e}"),
                Ok(_) => panic!("{uri} accepted"),
            }
        }
        let c = MlflowClient::new(&MlflowConfig::new("http://u:p%40ss@h:5000/ml/?q=1")).unwrap();
        assert_eq!(c.base, "http://h:5000/ml");
        assert_eq!(
            c.authorization.as_deref(),
            Some(format!("Basic {}", base64(b"u:p@ss")).as_str())
        );
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn an_unreachable_server_is_a_warning_not_a_run() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = MlflowConfig::new(format!("http://127.0.0.1:{port}"));
        let t = RunTracker::start(Some(&cfg), &[]);
        assert!(!t.is_active());
        assert!(t.run_id_for_version().is_none());
    }
}
