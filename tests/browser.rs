//! The dashboard in a real headless browser: Debian's Chromium, driven over
//! the DevTools protocol.
//!
//! Why: `tests/server.rs` checks the HTML the server sends, which says
//! nothing about what a person sees: a script error, a chart whose points
//! are not drawn, or an explorer that never fills in only show up when a
//! browser runs the page. So this test loads `/` in Chromium and checks the
//! rendered DOM: no console errors or exceptions, one drawn point per model
//! version in each metric chart (exactly the versions in `model_metrics`,
//! placed by their values), the drift chart with alerts highlighted, and the
//! explorer typed into and submitted as a person would, its lists compared
//! with what the JSON API answers, for a known user, a new user (the
//! popular list), a title, and bad input (a message, never a JS error).
//! A second test onboards a brand-new user through the page against an
//! `ease` champion: the write token typed in (kept in the tab's
//! `sessionStorage`, never in the served page), a wrong token's 401 said
//! plainly, five movies found by title and rated with the half-star
//! buttons, and the list turning `fold-in`, mostly animation and children's
//! movies, each explained by the movies just rated. Two of the five are
//! rated from the user's own list, three from a search for "toy story";
//! then two model versions are compared side by side (a ranker's catalogue
//! P@10 shown, its hyperparameters beside the other's), one is promoted and
//! rolled back from the page. Both tests check the page at 390 and 1,400 px
//! wide (no sideways scroll) and save full-page screenshots, whole and in
//! parts, under `target/screenshots/` for a person to look at.
//!
//! How: [`Chromium`] starts `chromium --headless=new` on a throwaway profile
//! with `--remote-debugging-port=0`, reads the `DevTools listening on ws://`
//! line from its stderr and is killed on drop (also when a test panics).
//! [`Page`] is a small synchronous DevTools client over one `tungstenite`
//! WebSocket: a tab created with `Target.createTarget`, attached in flat
//! mode, with `Runtime`, `Log`, `Network` and `Page` events collected so
//! every console message, exception and request can be asserted on.
//! Everything stays on loopback: the page's requests are checked to go to
//! the test server only, and the browser's own background traffic is turned
//! off by flags.
//!
//! Chromium is required: without `/usr/bin/chromium` (or
//! `$CINEMATCH_CHROMIUM`) the test fails and says to install it;
//! `./scripts/test.sh` installs it with apt. It runs on both backends (the
//! PostgreSQL one needs `CINEMATCH_TEST_PG`, like every other test), one
//! browser each per test.

mod common;
#[path = "browser/support.rs"]
mod support;

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use cinematch::pipeline::backtest::{GroupScore, ListScores, PolicyResult, WeekResult, WeekScores};
use cinematch::store::{BacktestRow, ModelRun, NewDriftAlert};
use cinematch::types::PipelineStatus;
use common::TestDb;
use serde_json::{json, Value};
use support::{load_small, train, TestServer};

/// The write token the onboarding test's server requires.
const TOKEN: &str = "onb0arding-s3cret-token";
use tungstenite::{Message, WebSocket};

/// How long any one browser step (a command, a load, a query) may take.
const STEP: Duration = Duration::from_secs(15);

// --- the browser ---------------------------------------------------------------

fn chromium_path() -> PathBuf {
    let path = std::env::var_os("CINEMATCH_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "{} not found: the dashboard test needs Debian's chromium. Install it \
         (apt-get install chromium), run ./scripts/test.sh (which installs it), \
         or point CINEMATCH_CHROMIUM at a Chromium binary",
        path.display()
    );
    path
}

/// A headless Chromium on a throwaway profile; killed (with every process
/// it started) on drop.
struct Chromium {
    child: Child,
    /// `ws://127.0.0.1:PORT/devtools/browser/ID`.
    ws_url: String,
    /// The last lines Chromium wrote to stderr, for failure messages.
    log: Arc<Mutex<VecDeque<String>>>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn launch() -> Chromium {
        let exe = chromium_path();
        let profile = tempfile::tempdir().expect("tempdir for the browser profile");
        let dir = profile.path();
        let mut child = Command::new(&exe)
            .args([
                "--headless=new",
                "--no-sandbox", // CI runs as root
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                &format!("--user-data-dir={}", dir.join("profile").display()),
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--metrics-recording-only",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-crash-reporter",
                "--disable-breakpad",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
                "--no-pings",
                "--mute-audio",
                "--window-size=1400,1000",
                "about:blank",
            ])
            // Nothing of the browser's lands in the real home directory.
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        // Chromium writes a lot to stderr (D-Bus complaints and the like):
        // keep reading it so it never blocks, keep the tail for diagnostics.
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (found, url) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let tail = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("DevTools listening on ") {
                    let _ = found.send(rest.trim().to_string());
                }
                let mut tail = tail.lock().unwrap();
                tail.push_back(line);
                if tail.len() > 40 {
                    tail.pop_front();
                }
            }
        });
        let mut browser = Chromium {
            child,
            ws_url: String::new(),
            log,
            _profile: profile,
        };
        match url.recv_timeout(STEP) {
            Ok(u) => browser.ws_url = u,
            Err(_) => panic!(
                "chromium did not open its DevTools port within {STEP:?}; its stderr:\n{}",
                browser.stderr_tail()
            ),
        }
        browser
    }

    fn stderr_tail(&self) -> String {
        let tail = self.log.lock().unwrap();
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // SIGKILL to the browser process: its renderers, GPU and utility
        // processes notice at once and exit with it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- a DevTools client -------------------------------------------------------------

/// One tab, driven over the browser's DevTools WebSocket (flat session).
struct Page {
    ws: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    /// Every event of the tab since it was opened, in order.
    events: Vec<Value>,
}

impl Page {
    fn open(browser: &Chromium) -> Page {
        let rest = browser
            .ws_url
            .strip_prefix("ws://")
            .unwrap_or_else(|| panic!("unexpected DevTools address {:?}", browser.ws_url));
        let host = rest.split('/').next().unwrap();
        let stream = TcpStream::connect(host).expect("connect to chromium's DevTools port");
        stream.set_nodelay(true).unwrap();
        let (ws, _) = tungstenite::client::client(browser.ws_url.as_str(), stream)
            .unwrap_or_else(|e| panic!("DevTools WebSocket handshake failed: {e}"));
        let mut page = Page {
            ws,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
        };
        let target = page.call("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = page.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        page.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        for domain in ["Page", "Runtime", "Log", "Network"] {
            page.call(&format!("{domain}.enable"), json!({}));
        }
        page.call("Page.bringToFront", json!({}));
        page.call(
            "Emulation.setFocusEmulationEnabled",
            json!({"enabled": true}),
        );
        page
    }

    /// The next message, or None when nothing came before `deadline`.
    fn receive(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.ws
                .get_mut()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("DevTools sent bad JSON"))
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return None
                }
                Err(e) => panic!("the DevTools connection failed: {e}"),
            }
        }
    }

    /// Sends a command to the tab (or, before attaching, the browser) and
    /// returns its result; events that arrive meanwhile are kept.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        let deadline = Instant::now() + STEP;
        loop {
            let Some(m) = self.receive(deadline) else {
                panic!("chromium did not answer {method} within {STEP:?}")
            };
            if m["id"].as_u64() == Some(id) {
                if let Some(err) = m.get("error") {
                    panic!("{method} failed: {err}");
                }
                return m["result"].clone();
            }
            if m.get("method").is_some() && m["sessionId"] == json!(self.session) {
                self.events.push(m);
            }
        }
    }

    /// Waits for an event of the tab after the `from`-th one.
    fn wait_event(&mut self, method: &str, from: usize) {
        let deadline = Instant::now() + STEP;
        loop {
            if self.events[from.min(self.events.len())..]
                .iter()
                .any(|e| e["method"] == method)
            {
                return;
            }
            match self.receive(deadline) {
                Some(m) if m.get("method").is_some() && m["sessionId"] == json!(self.session) => {
                    self.events.push(m)
                }
                Some(_) => {}
                None => panic!("no {method} within {STEP:?}"),
            }
        }
    }

    fn navigate(&mut self, url: &str) {
        let from = self.events.len();
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(
            r.get("errorText").is_none(),
            "navigating to {url} failed: {r}"
        );
        self.wait_event("Page.loadEventFired", from);
    }

    /// Runs `expression` in the page (awaiting a promise) and returns its
    /// value; an exception fails the test with its message.
    fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Page::eval`], with an exception returned as the error.
    fn try_eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({
                "expression": expression,
                "awaitPromise": true,
                "returnByValue": true,
                "timeout": STEP.as_millis() as u64,
            }),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            let what = ex["exception"]["description"]
                .as_str()
                .or(ex["text"].as_str())
                .unwrap_or("?");
            return Err(format!("evaluating {expression:?} threw: {what}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Types `text` into the element `#id` as a keyboard would (replacing
    /// what was there).
    fn type_into(&mut self, id: &str, text: &str) {
        self.eval(&format!(
            "(() => {{ const el = document.getElementById({id:?}); el.value = ''; el.focus(); \
             return document.activeElement === el; }})()"
        ));
        self.call("Input.insertText", json!({"text": text}));
        let value = self.eval(&format!("document.getElementById({id:?}).value"));
        assert_eq!(value, json!(text), "typing into #{id}");
    }

    /// Presses Enter in the focused element: the form's implicit submission.
    fn press_enter(&mut self) {
        for kind in ["keyDown", "keyUp"] {
            let mut p = json!({"type": kind, "key": "Enter", "code": "Enter",
                               "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13});
            if kind == "keyDown" {
                p["text"] = json!("\r");
            }
            self.call("Input.dispatchKeyEvent", p);
        }
    }

    /// A real mouse click at the centre of the element `selector` matches,
    /// scrolled into view first; fails if something else is on top of it.
    fn click(&mut self, selector: &str) {
        let at = self.eval(&format!(
            "(() => {{ const el = document.querySelector({selector:?}); \
             el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect(); \
             const x = r.left + r.width / 2, y = r.top + r.height / 2; \
             const top = document.elementFromPoint(x, y); \
             return {{x, y, hit: top === el || el.contains(top)}}; }})()"
        ));
        assert_eq!(at["hit"], true, "{selector} is covered or not visible");
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": at["x"], "y": at["y"], "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Reads what has arrived so far without waiting.
    fn drain(&mut self) {
        while let Some(m) = self.receive(Instant::now() + Duration::from_millis(50)) {
            if m.get("method").is_some() && m["sessionId"] == json!(self.session) {
                self.events.push(m);
            }
        }
    }

    /// Console errors and warnings, uncaught exceptions and browser log
    /// errors (failed loads among them) since the `from`-th event.
    fn problems(&mut self, from: usize) -> Vec<String> {
        self.drain();
        self.events[from..]
            .iter()
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.exceptionThrown" => Some(format!(
                        "uncaught exception: {}",
                        p["exceptionDetails"]["exception"]["description"]
                            .as_str()
                            .or(p["exceptionDetails"]["text"].as_str())
                            .unwrap_or("?")
                    )),
                    "Runtime.consoleAPICalled"
                        if ["error", "warning", "assert"].contains(&p["type"].as_str()?) =>
                    {
                        let args: Vec<String> = p["args"]
                            .as_array()?
                            .iter()
                            .map(|a| {
                                a["value"]
                                    .as_str()
                                    .map(str::to_string)
                                    .or(a["description"].as_str().map(str::to_string))
                                    .unwrap_or_else(|| a.to_string())
                            })
                            .collect();
                        Some(format!(
                            "console.{}: {}",
                            p["type"].as_str()?,
                            args.join(" ")
                        ))
                    }
                    "Log.entryAdded"
                        if ["error", "warning"].contains(&p["entry"]["level"].as_str()?) =>
                    {
                        Some(format!(
                            "log {} ({}): {} {}",
                            p["entry"]["level"].as_str()?,
                            p["entry"]["source"].as_str().unwrap_or("?"),
                            p["entry"]["text"].as_str().unwrap_or("?"),
                            p["entry"]["url"].as_str().unwrap_or("")
                        ))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// Every URL the tab requested since the `from`-th event, with the
    /// HTTP status it got (0: failed without an answer).
    fn requests(&mut self, from: usize) -> Vec<(String, u64)> {
        self.drain();
        let mut urls: Vec<(String, String)> = Vec::new();
        let mut out = Vec::new();
        for e in &self.events[from..] {
            let p = &e["params"];
            match e["method"].as_str().unwrap_or("") {
                "Network.requestWillBeSent" => urls.push((
                    p["requestId"].as_str().unwrap_or("").to_string(),
                    p["request"]["url"].as_str().unwrap_or("").to_string(),
                )),
                "Network.responseReceived" => out.push((
                    p["response"]["url"].as_str().unwrap_or("").to_string(),
                    p["response"]["status"].as_u64().unwrap_or(0),
                )),
                "Network.loadingFailed" => {
                    let id = p["requestId"].as_str().unwrap_or("");
                    let url = urls
                        .iter()
                        .find(|(r, _)| r == id)
                        .map_or("?", |(_, u)| u.as_str());
                    out.push((format!("{url} ({})", p["errorText"]), 0));
                }
                _ => {}
            }
        }
        // Requests that never got an answer count as failed too.
        for (id, url) in &urls {
            let answered = self.events[from..].iter().any(|e| {
                matches!(
                    e["method"].as_str(),
                    Some("Network.responseReceived" | "Network.loadingFailed")
                ) && e["params"]["requestId"] == json!(id)
            });
            if !answered && !url.starts_with("data:") {
                out.push((format!("{url} (no answer)"), 0));
            }
        }
        out
    }
}

impl Page {
    /// `(method, url, Authorization header)` of every request the tab sent
    /// with an Authorization header since the `from`-th event.
    fn authorized_requests(&mut self, from: usize) -> Vec<(String, String, String)> {
        self.drain();
        self.events[from..]
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| {
                let r = &e["params"]["request"];
                let auth = r["headers"].as_object()?.iter().find_map(|(k, v)| {
                    k.eq_ignore_ascii_case("authorization")
                        .then(|| v.as_str().unwrap_or("").to_string())
                })?;
                Some((
                    r["method"].as_str()?.to_string(),
                    r["url"].as_str()?.to_string(),
                    auth,
                ))
            })
            .collect()
    }
}

/// Helpers the test defines in the page once it has loaded.
const HELPERS: &str = r##"
window.cmTest = {
  // Resolves with pred()'s value once it is truthy; polls every 20 ms.
  waitFor(pred, what, ms) {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      (function tick() {
        let v;
        try { v = pred(); } catch (e) { return reject(e); }
        if (v) return resolve(v);
        if (Date.now() - t0 > ms) return reject(new Error("timed out waiting for " + what));
        setTimeout(tick, 20);
      })();
    });
  },
  // Waits for the list's data-state to leave "loading" (after the test
  // removed it before acting), and returns it.
  settled(id, ms) {
    return this.waitFor(() => {
      const s = document.getElementById(id).dataset.state;
      return s && s !== "loading" ? s : null;
    }, "#" + id + " to settle", ms);
  },
  // A result list as [{id, title}], title being the item's first node.
  items(id) {
    return Array.from(document.querySelectorAll("#" + id + " > li")).map(li => ({
      id: Number(li.dataset.movieId),
      title: li.firstChild ? li.firstChild.textContent : "",
      visible: li.getBoundingClientRect().height > 0,
    }));
  },
  text(id) {
    const el = document.getElementById(id);
    return { text: el.textContent, error: el.classList.contains("error-text") };
  },
};
true
"##;

/// Drawn points of the charts under `section`: per chart its caption and
/// each circle's data attributes, position and rendered size.
fn charts(page: &mut Page, section: &str, circle_class: &str) -> Vec<Value> {
    let v = page.eval(&format!(
        r##"Array.from(document.querySelectorAll("#{section} figure.chart")).map(f => {{
             const svg = f.querySelector("svg").getBoundingClientRect();
             return {{
               title: f.querySelector("figcaption").firstChild.textContent.trim(),
               points: Array.from(f.querySelectorAll("circle.{circle_class}")).map(c => {{
                 const r = c.getBoundingClientRect();
                 const style = getComputedStyle(c);
                 return {{
                   data: Object.assign({{}}, c.dataset),
                   classes: Array.from(c.classList),
                   cx: c.cx.baseVal.value, cy: c.cy.baseVal.value,
                   fill: style.fill,
                   drawn: r.width > 0 && r.height > 0 && style.display !== "none"
                     && style.visibility !== "hidden" && Number(style.opacity) > 0
                     && r.left >= svg.left - 1 && r.right <= svg.right + 1
                     && r.top >= svg.top - 1 && r.bottom <= svg.bottom + 1,
                 }};
               }}),
             }};
           }})"##
    ));
    v.as_array().expect("charts").clone()
}

/// `[(id, title)]` of a JSON API list.
fn api_items(items: &Value) -> Vec<(i64, String)> {
    items
        .as_array()
        .expect("items array")
        .iter()
        .map(|i| {
            (
                i["movieId"].as_i64().expect("movieId"),
                i["title"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// `[(id, title)]` of a result list on the page, every item visible.
fn page_items(page: &mut Page, id: &str) -> Vec<(i64, String)> {
    let v = page.eval(&format!("cmTest.items({id:?})"));
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["visible"], true, "#{id} has an invisible item: {i}");
            (
                i["id"].as_i64().unwrap_or(-1),
                i["title"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn get_json(server: &TestServer, path: &str) -> Value {
    let r = server.get(path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

/// Removes `#id`'s `data-state`, so waiting for it afterwards waits for the
/// answer to what the test does next.
fn reset_state(page: &mut Page, id: &str) {
    page.eval(&format!(
        "document.getElementById({id:?}).removeAttribute('data-state')"
    ));
}

/// Waits for `#id`'s `data-state` to leave `loading` and returns it; on a
/// timeout, says what the browser reported meanwhile.
fn settle(page: &mut Page, id: &str) -> String {
    match page.try_eval(&format!("cmTest.settled({id:?}, 8000)")) {
        Ok(v) => v.as_str().unwrap().to_string(),
        Err(e) => panic!(
            "{e}\nthe page's status lines: {}\nthe browser reported: {:?}",
            page.eval("['user-status', 'movie-status', 'rate-status'].map(id => document.getElementById(id).textContent).join(' | ')"),
            page.problems(0)
        ),
    }
}

/// Types `value` into the form field `input`, submits it with Enter and
/// waits for the list `list` to settle: its `data-state`.
fn submit(page: &mut Page, input: &str, value: &str, list: &str) -> String {
    reset_state(page, list);
    page.type_into(input, value);
    page.press_enter();
    settle(page, list)
}

/// What the browser reported since `from` is only the server's 401s, of
/// which there was at least one: a refusal said in the page, not a failure.
#[track_caller]
fn assert_only_refused(page: &mut Page, from: usize, when: &str) {
    let problems = page.problems(from);
    assert!(
        !problems.is_empty()
            && problems
                .iter()
                .all(|p| p.starts_with("log error (network)") && p.contains("401")),
        "{when}: {problems:?}"
    );
}

#[track_caller]
fn assert_no_problems(page: &mut Page, from: usize, when: &str) {
    let problems = page.problems(from);
    assert!(
        problems.is_empty(),
        "{when}: the browser reported\n  {}",
        problems.join("\n  ")
    );
}

// --- the test ------------------------------------------------------------------

fn dashboard_in_headless_chromium(db: TestDb) {
    let started = Instant::now();
    // Start the browser first: it boots while the models train.
    let browser = Chromium::launch();

    let mut store = db.store();
    load_small(store.as_mut());
    let versions: Vec<String> = (1..=3).map(|seed| train(store.as_mut(), seed)).collect();
    // Two drift checks: the first quiet, on batch w01 inside a pipeline
    // run, the second with one alert and no batch recorded. Each also
    // scores the champion's lists (`ranking_quality`, its own section).
    for (i, (score, triggered)) in [(0.04, false), (0.121, true)].into_iter().enumerate() {
        let run = (i == 0).then(|| store.start_pipeline_run(Some("w01")).unwrap());
        store
            .insert_drift_alerts(&[
                NewDriftAlert {
                    feature_name: "ranking_quality".into(),
                    drift_score: [0.31, 0.18][i],
                    threshold: 0.22,
                    alert_triggered: i == 1,
                    notes: "NDCG@10 of the champion's lists".into(),
                },
                NewDriftAlert {
                    feature_name: "rating_mean".into(),
                    drift_score: score,
                    threshold: 0.1,
                    alert_triggered: triggered,
                    notes: "Baseline: 3.540".into(),
                },
                NewDriftAlert {
                    feature_name: "rating_std".into(),
                    drift_score: 0.045,
                    threshold: 0.15,
                    alert_triggered: false,
                    notes: "Baseline: 1.070".into(),
                },
            ])
            .unwrap();
        if let Some(id) = run {
            store
                .finish_pipeline_run(id, PipelineStatus::Succeeded, "[]", "{}")
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A refused batch: folded away under its count.
    store.begin_ingestion("broken_batch").unwrap();
    store
        .fail_ingestion("broken_batch", "line 2: not a rating")
        .unwrap();
    // A backtest of one policy over three weeks, against the baselines.
    store.insert_backtest(&backtest_row()).unwrap();
    let runs = store.model_runs().unwrap();
    let champion = store.champion().unwrap().expect("a champion");
    let server = TestServer::start(db.url(), |_| {});
    server.wait_ready();
    let origin = format!("http://{}", server.addr);

    let mut page = Page::open(&browser);
    page.navigate(&format!("{origin}/"));
    assert_eq!(page.eval(HELPERS), json!(true));

    // --- the page loads cleanly ---------------------------------------------------
    assert_no_problems(&mut page, 0, "loading the dashboard");
    let loaded = page.requests(0);
    assert!(
        loaded
            .iter()
            .any(|(u, s)| *u == format!("{origin}/") && *s == 200),
        "the page itself was not fetched with 200: {loaded:?}"
    );
    for (url, status) in &loaded {
        assert!(
            url.starts_with(&origin) && (200..300).contains(status),
            "the page requested {url} (status {status}): only its own server, successfully"
        );
    }
    assert_eq!(
        page.eval("document.title"),
        json!("CineMatch dashboard"),
        "not the dashboard"
    );

    // --- one drawn point per model version in each metric chart -----------------------
    let expected: Vec<&str> = runs.iter().map(|r| r.model_version.as_str()).collect();
    assert_eq!(
        expected.iter().copied().collect::<BTreeSet<_>>(),
        versions.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "model_metrics does not hold the trained versions"
    );
    let model_charts = charts(&mut page, "models", "point");
    let titles: Vec<&str> = model_charts
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    // The deployment's objective (NDCG@10 by default) first; the spec's
    // precision@10 always says what it counts.
    assert_eq!(
        titles,
        [
            "NDCG@10",
            "Recall@10",
            "P@10",
            "Coverage",
            "RMSE",
            "MAE",
            "P@10 (rated items ≥3.5)"
        ]
    );
    let hints: Vec<String> = page
        .eval("Array.from(document.querySelectorAll('#models figcaption .hint')).map(h => h.textContent)")
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    for hint in &hints[..3] {
        assert!(hint.contains("the list a user sees"), "{hints:?}");
    }
    // One series per algorithm, named in a legend under every chart.
    let legends = page.eval(
        "Array.from(document.querySelectorAll('#models figure.chart')).map(f => \
         Array.from(f.querySelectorAll('.legend li')).map(li => li.textContent))",
    );
    assert!(
        legends
            .as_array()
            .unwrap()
            .iter()
            .all(|l| *l == json!(["svd"])),
        "{legends}"
    );
    type Metric = (&'static str, fn(&ModelRun) -> Option<f64>);
    let metrics: [Metric; 7] = [
        ("ndcg_at_10", |r| r.evaluation.as_ref()?.ndcg_at_10),
        ("recall_at_10", |r| r.evaluation.as_ref()?.recall_at_10),
        ("catalogue_precision_at_10", |r| {
            r.evaluation.as_ref()?.catalogue_precision_at_10
        }),
        ("coverage", |r| r.evaluation.as_ref()?.coverage),
        ("rmse", |r| r.rmse),
        ("mae", |r| r.mae),
        ("precision_at_10", |r| r.precision_at_10),
    ];
    for (chart, (metric, value_of)) in model_charts.iter().zip(metrics) {
        let points = chart["points"].as_array().unwrap();
        let shown: Vec<&str> = points
            .iter()
            .map(|p| p["data"]["version"].as_str().unwrap_or("?"))
            .collect();
        // Exactly one point per version, oldest to newest left to right.
        assert_eq!(shown, expected, "{metric} chart: {chart}");
        assert!(
            points
                .windows(2)
                .all(|w| w[0]["cx"].as_f64() < w[1]["cx"].as_f64()),
            "{metric} points not left to right: {chart}"
        );
        for (p, run) in points.iter().zip(&runs) {
            assert_eq!(p["drawn"], true, "{metric} point not drawn: {p}");
            assert_eq!(p["data"]["metric"], metric);
            let want = value_of(run).unwrap_or_else(|| panic!("{metric} missing for {run:?}"));
            let got: f64 = p["data"]["value"].as_str().unwrap().parse().unwrap();
            assert_eq!(got, want, "{metric} of {}", run.model_version);
            let is_champion = p["classes"]
                .as_array()
                .unwrap()
                .contains(&json!("champion"));
            assert_eq!(
                is_champion,
                run.model_version == champion,
                "{metric}: champion marking of {}",
                run.model_version
            );
        }
        // Placed by value: a larger value is drawn higher (smaller y).
        for a in points {
            for b in points {
                let (va, vb) = (value_of_point(a), value_of_point(b));
                if va < vb {
                    assert!(
                        a["cy"].as_f64().unwrap() > b["cy"].as_f64().unwrap(),
                        "{metric}: {va} is drawn above {vb}: {chart}"
                    );
                }
            }
        }
    }

    // --- the drift charts: every check drawn, the alert highlighted --------------------
    let drift = charts(&mut page, "drift", "drift-point");
    let by_title = |t: &str| {
        drift
            .iter()
            .find(|c| c["title"] == t)
            .unwrap_or_else(|| panic!("no {t} drift chart in {drift:?}"))
    };
    assert_eq!(drift.len(), 2, "{drift:?}");
    let mean = by_title("rating_mean")["points"].as_array().unwrap();
    assert_eq!(mean.len(), 2, "one point per check: {mean:?}");
    let alerts: Vec<&str> = mean
        .iter()
        .map(|p| p["data"]["alert"].as_str().unwrap())
        .collect();
    assert_eq!(alerts, ["false", "true"], "oldest check first: {mean:?}");
    assert!(mean.iter().all(|p| p["drawn"] == true), "{mean:?}");
    assert!(
        mean[1]["classes"]
            .as_array()
            .unwrap()
            .contains(&json!("alert"))
            && !mean[0]["classes"]
                .as_array()
                .unwrap()
                .contains(&json!("alert")),
        "{mean:?}"
    );
    assert_ne!(
        mean[0]["fill"], mean[1]["fill"],
        "the alert is not drawn differently: {mean:?}"
    );
    assert!(
        mean[1]["cy"].as_f64() < mean[0]["cy"].as_f64(),
        "0.121 drawn below 0.04"
    );
    // Drawn relative to the threshold: 0.4 and 1.21 of it, on either side
    // of the dashed line at 1; the checks named by their batch.
    let ratios: Vec<f64> = mean
        .iter()
        .map(|p| p["data"]["ratio"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        (ratios[0] - 0.4).abs() < 1e-9 && (ratios[1] - 1.21).abs() < 1e-9,
        "{ratios:?}"
    );
    let level = page.eval(
        "(() => { const l = Array.from(document.querySelectorAll('#drift figure.chart')).find(f => \
         f.querySelector('figcaption').firstChild.textContent.trim() === 'rating_mean') \
         .querySelector('line.threshold'); return [l.dataset.level, l.y1.baseVal.value]; })()",
    );
    assert_eq!(level[0], "1", "{level}");
    let line_y = level[1].as_f64().unwrap();
    assert!(
        mean[0]["cy"].as_f64().unwrap() > line_y && mean[1]["cy"].as_f64().unwrap() < line_y,
        "the threshold line is not between 0.4 and 1.21 of it: {line_y} {mean:?}"
    );
    assert_eq!(mean[0]["data"]["batch"], "w01", "{mean:?}");
    assert!(
        mean[1]["data"]["batch"]
            .as_str()
            .unwrap()
            .starts_with("#2 "),
        "{mean:?}"
    );
    let x_labels = page.eval(
        "Array.from(document.querySelector('#drift figure.chart').querySelectorAll('text.xtick')).map(t => t.lastChild.textContent)",
    );
    assert_eq!(x_labels[0], "w01", "{x_labels}");

    // --- list quality: NDCG@10 per batch against its alert level -------------------------
    let quality = charts(&mut page, "quality", "quality-point");
    assert_eq!(quality.len(), 1, "{quality:?}");
    let q = quality[0]["points"].as_array().unwrap();
    let values: Vec<f64> = q.iter().map(value_of_point).collect();
    assert_eq!(values, [0.31, 0.18], "{q:?}");
    assert!(q[1]["classes"]
        .as_array()
        .unwrap()
        .contains(&json!("alert")));
    assert!(q[0]["cy"].as_f64() < q[1]["cy"].as_f64());

    // --- the backtest: served against the baselines, per week ----------------------------
    let bt = charts(&mut page, "backtest", "bt-point");
    assert_eq!(bt.len(), 1, "{bt:?}");
    let series = |name: &str| -> Vec<f64> {
        bt[0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["data"]["series"] == name)
            .map(value_of_point)
            .collect()
    };
    assert_eq!(series("served (weekly)"), [0.30, 0.32, 0.35]);
    assert_eq!(series("most rated"), [0.10, 0.11, 0.12]);
    assert_eq!(series("trending"), [0.20, 0.19, 0.21]);

    // --- failed ingestions folded away ---------------------------------------------------
    let failed = page.eval(
        "(() => { const d = document.getElementById('failed-ingestions'); \
         return [d.open, d.querySelector('summary').textContent, d.querySelectorAll('tbody tr').length, \
         document.querySelectorAll('#ingestions > .scroll tbody tr').length]; })()",
    );
    assert_eq!(failed[0], false, "{failed}");
    assert!(
        failed[1]
            .as_str()
            .unwrap()
            .starts_with("1 failed ingestion"),
        "{failed}"
    );
    assert_eq!(failed[2], 1, "{failed}");
    assert_eq!(failed[3], 0, "a failed batch outside the fold: {failed}");
    let std = by_title("rating_std")["points"].as_array().unwrap();
    assert_eq!(std.len(), 2);
    assert!(std.iter().all(|p| p["data"]["alert"] == "false"));
    // The page's verdict is the API's (which tests ask for a retrain is
    // the pipeline's business, see `drift_check::triggers_retraining`).
    let needed = get_json(&server, "/api/status")["retrainingNeeded"]
        .as_bool()
        .expect("retrainingNeeded");
    assert_eq!(
        page.eval("document.getElementById('verdict').dataset.retrainingNeeded"),
        json!(needed.to_string())
    );

    // --- the explorer: a known user -------------------------------------------------------
    let mark = page.events.len();
    assert_eq!(submit(&mut page, "user-input", "1", "user-recs"), "done");
    let api = get_json(&server, "/api/users/1/recommendations");
    assert_eq!(api["strategy"], "model");
    let recs = page_items(&mut page, "user-recs");
    assert_eq!(recs.len(), 10);
    assert_eq!(recs, api_items(&api["items"]), "user 1's recommendations");
    let api_rated = get_json(&server, "/api/users/1/ratings?limit=15");
    let rated = page_items(&mut page, "user-rated");
    assert_eq!(rated.len(), 15);
    assert_eq!(rated, api_items(&api_rated["items"]), "user 1's ratings");
    assert_eq!(
        page.eval("document.getElementById('rated-title').textContent"),
        json!(format!(
            "Rated: the newest 15 of {}",
            api_rated["total"].as_i64().unwrap()
        )),
        "the Rated list does not say it is a part"
    );
    // Every movie of the list and of the Rated list has stars to rate it;
    // the rated ones show their rating.
    let stars = page.eval(
        "['user-recs', 'user-rated'].map(id => Array.from(document.querySelectorAll('#' + id + ' > li')) \
         .map(li => { const s = li.querySelector('.stars'); return s ? s.dataset.rating : null; }))",
    );
    assert!(
        stars[0].as_array().unwrap().iter().all(|r| *r == json!("")),
        "{stars}"
    );
    let shown_ratings: Vec<Value> = api_rated["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!(format!("{}", r["rating"].as_f64().unwrap())))
        .collect();
    assert_eq!(stars[1], json!(shown_ratings), "{stars}");
    let status = page.eval("cmTest.text('user-status')");
    let text = status["text"].as_str().unwrap();
    assert_eq!(status["error"], false, "{status}");
    assert!(
        text.contains(&champion) && text.contains("personalized"),
        "{text:?}"
    );
    assert_eq!(
        page.eval("document.getElementById('user-recs').dataset.strategy"),
        json!("model")
    );
    assert_no_problems(&mut page, mark, "user 1 in the explorer");

    // --- a user the model does not know: the popular list, labelled so -------------------
    let mark = page.events.len();
    assert_eq!(
        submit(&mut page, "user-input", "999999", "user-recs"),
        "done"
    );
    let api = get_json(&server, "/api/users/999999/recommendations");
    assert_eq!(api["strategy"], "popular");
    let recs = page_items(&mut page, "user-recs");
    assert_eq!(recs.len(), 10);
    assert_eq!(recs, api_items(&api["items"]), "the cold-start list");
    assert_eq!(page_items(&mut page, "user-rated"), vec![]);
    assert_eq!(
        page.eval("document.getElementById('user-recs').dataset.strategy"),
        json!("popular")
    );
    let heading = page.eval("document.getElementById('recs-title').textContent");
    assert!(
        heading.as_str().unwrap().to_lowercase().contains("popular"),
        "{heading}"
    );
    let text = page.eval("cmTest.text('user-status')")["text"].clone();
    assert!(text.as_str().unwrap().contains("popular"), "{text}");
    assert_no_problems(&mut page, mark, "an unknown user in the explorer");

    // "a new user" picks an unused id: the popular list.
    let mark = page.events.len();
    reset_state(&mut page, "user-recs");
    page.click("#pick-new-user");
    assert_eq!(settle(&mut page, "user-recs"), "done");
    let picked: i64 = page
        .eval("document.getElementById('user-input').value")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((900_001..1_000_000).contains(&picked), "{picked}");
    assert_eq!(
        page.eval("document.getElementById('user-recs').dataset.strategy"),
        json!("popular")
    );
    assert_no_problems(&mut page, mark, "picking a new user");

    // --- a title: its matches and the movies like the first ------------------------------
    let mark = page.events.len();
    reset_state(&mut page, "movie-similar");
    page.type_into("movie-input", "toy story");
    page.click("#movie-form button[type=submit]");
    assert_eq!(settle(&mut page, "movie-similar"), "done");
    let api = get_json(&server, "/api/movies?limit=5&q=toy%20story");
    let matches = page_items(&mut page, "movie-matches");
    assert_eq!(
        matches,
        api_items(&api["movies"]),
        "matches of \"toy story\""
    );
    assert!(matches.len() >= 2, "{matches:?}");
    assert_eq!(matches[0].1, "Toy Story (1995)");
    let similar_api = get_json(&server, &format!("/api/movies/{}/similar", matches[0].0));
    let similar = page_items(&mut page, "movie-similar");
    assert_eq!(similar.len(), 10);
    assert_eq!(
        similar,
        api_items(&similar_api["items"]),
        "similar to Toy Story"
    );
    assert_eq!(
        page.eval("document.getElementById('similar-title').textContent"),
        json!("Similar to Toy Story (1995)")
    );
    // Clicking another match switches the similar list to it.
    reset_state(&mut page, "movie-similar");
    page.click("#movie-matches > li:nth-child(2) > button");
    assert_eq!(settle(&mut page, "movie-similar"), "done");
    let second = &matches[1];
    let similar_api = get_json(&server, &format!("/api/movies/{}/similar", second.0));
    assert_eq!(
        page_items(&mut page, "movie-similar"),
        api_items(&similar_api["items"]),
        "similar to {}",
        second.1
    );
    assert_eq!(
        page.eval("document.getElementById('similar-title').textContent"),
        json!(format!("Similar to {}", second.1))
    );
    assert_no_problems(&mut page, mark, "\"toy story\" in the explorer");
    for (url, status) in page.requests(mark) {
        assert!(
            url.starts_with(&format!("{origin}/api/")) && status == 200,
            "the explorer requested {url}: {status}"
        );
    }

    // --- bad input: a message next to the form, never a JS error -----------------------------
    // A title nothing matches.
    let mark = page.events.len();
    assert_eq!(
        submit(&mut page, "movie-input", "qqzzxx nothing", "movie-similar"),
        "empty"
    );
    let status = page.eval("cmTest.text('movie-status')");
    assert_eq!(status["error"], true, "{status}");
    assert!(
        status["text"]
            .as_str()
            .unwrap()
            .contains("No movie title matches"),
        "{status}"
    );
    assert_eq!(page_items(&mut page, "movie-matches"), vec![]);
    assert_eq!(page_items(&mut page, "movie-similar"), vec![]);
    assert_eq!(
        page.eval("document.getElementById('similar-title').textContent"),
        json!("Similar"),
        "the heading still names the last movie"
    );
    assert_no_problems(&mut page, mark, "a title with no match");

    // User 0: the form itself refuses it, says why, and asks nothing.
    let mark = page.events.len();
    assert_eq!(submit(&mut page, "user-input", "0", "user-recs"), "invalid");
    let status = page.eval("cmTest.text('user-status')");
    assert_eq!(status["error"], true, "{status}");
    assert!(
        !status["text"].as_str().unwrap().trim().is_empty(),
        "{status}"
    );
    assert_no_problems(&mut page, mark, "user 0");
    assert_eq!(page.requests(mark), vec![], "user 0 reached the server");

    // An id the server refuses (too large): its message, and the failed
    // request is the only thing the browser reports.
    let mark = page.events.len();
    assert_eq!(
        submit(&mut page, "user-input", "99999999999", "user-recs"),
        "error"
    );
    let status = page.eval("cmTest.text('user-status')");
    assert_eq!(status["error"], true, "{status}");
    assert!(
        status["text"].as_str().unwrap().contains("too large"),
        "{status}"
    );
    assert_eq!(page_items(&mut page, "user-recs"), vec![]);
    assert_eq!(page_items(&mut page, "user-rated"), vec![]);
    let problems = page.problems(mark);
    assert!(!problems.is_empty(), "the failed request was not reported");
    for p in &problems {
        assert!(
            p.starts_with("log error (network)") && p.contains("400"),
            "a bad user id gave more than a failed request: {problems:?}"
        );
    }

    // --- the explorer remembers its queries in the URL ------------------------------------
    let search = page.eval("location.search");
    assert_eq!(search, json!("?user=99999999999&movie=qqzzxx+nothing"));
    let mark = page.events.len();
    page.navigate(&format!("{origin}/?user=1&movie=toy+story"));
    assert_eq!(page.eval(HELPERS), json!(true));
    assert_eq!(settle(&mut page, "user-recs"), "done");
    assert_eq!(settle(&mut page, "movie-similar"), "done");
    let api = get_json(&server, "/api/users/1/recommendations");
    assert_eq!(page_items(&mut page, "user-recs"), api_items(&api["items"]));
    assert_eq!(
        page.eval("document.getElementById('user-input').value"),
        json!("1")
    );
    assert_no_problems(&mut page, mark, "opening /?user=1&movie=toy+story");

    // The page's own error box stayed empty throughout.
    assert_eq!(
        page.eval("(() => { const e = document.getElementById('js-errors'); return e.hidden && e.childElementCount === 0; })()"),
        json!(true)
    );
    // Refresh: the page again, newly generated, the explorer's user kept.
    let mark = page.events.len();
    let generated = page.eval("document.getElementById('generated').textContent");
    std::thread::sleep(Duration::from_millis(1100)); // the stamp has seconds
    page.click("#refresh");
    page.wait_event("Page.loadEventFired", mark);
    assert_eq!(page.eval(HELPERS), json!(true));
    assert_eq!(settle(&mut page, "user-recs"), "done");
    assert_ne!(
        page.eval("document.getElementById('generated').textContent"),
        generated,
        "Refresh did not load the page again"
    );
    assert_eq!(page_items(&mut page, "user-recs"), api_items(&api["items"]));
    assert_no_problems(&mut page, mark, "refreshing");
    // Usable on a phone and on a wide screen, no sideways scroll.
    let mark = page.events.len();
    check_widths(&mut page, &format!("dashboard-{}", backend(&db)));
    assert_no_problems(&mut page, mark, "resizing");
    drop(page);
    drop(browser);
    eprintln!("browser test took {:?}", started.elapsed());
}

/// Onboarding as a person does it: a new user id, the write token typed
/// into the page, five animated children's movies found by title and rated
/// with the stars; the list turns `fold-in`, mostly animation and children's
/// movies, each explained by the movies just rated.
fn onboarding_in_headless_chromium(db: TestDb) {
    let started = Instant::now();
    let browser = Chromium::launch();
    let mut store = db.store();
    load_small(store.as_mut());
    let opts = cinematch::registry::TrainOptions::new(cinematch::models::Hyperparams::default_for(
        cinematch::models::Algo::Ease,
    ));
    let ease = cinematch::registry::train(store.as_mut(), &opts, &cinematch::progress::Silent)
        .expect("train ease");
    // A second version, not promoted: to compare with and to promote.
    let svd = train(store.as_mut(), 1);
    let server = TestServer::start(db.url(), |c| c.api_token = Some(TOKEN.into()));
    server.wait_ready();
    let origin = format!("http://{}", server.addr);

    // The page (markup and script, all of it one response) carries no token.
    let served = server.get("/");
    assert_eq!(served.status, 200);
    let html = served.text();
    assert!(html.contains("id=\"token-input\""), "no token field");
    assert!(
        !html.contains(TOKEN),
        "the served page contains the write token"
    );

    let mut page = Page::open(&browser);
    page.navigate(&format!("{origin}/"));
    assert_eq!(page.eval(HELPERS), json!(true));
    assert_no_problems(&mut page, 0, "loading the dashboard");
    assert_eq!(page.eval("sessionStorage.length"), json!(0));

    // --- a brand-new user: the popular list ----------------------------------------
    let user = 900_001;
    assert_eq!(
        submit(&mut page, "user-input", &user.to_string(), "user-recs"),
        "done"
    );
    assert_eq!(
        page.eval("document.getElementById('user-recs').dataset.strategy"),
        json!("popular")
    );
    let popular = page_items(&mut page, "user-recs");
    assert_eq!(popular.len(), 10);
    assert_eq!(
        kids_shown(&mut page),
        0,
        "the popular list has no kids' movie"
    );
    let rating_as = page.eval("cmTest.text('rate-user')");
    assert!(
        rating_as["text"]
            .as_str()
            .unwrap()
            .contains(&format!("user {user}")),
        "{rating_as}"
    );

    // --- stars before any token: a message, and nothing sent ----------------------------
    find_title(&mut page, "toy story", 1);
    let mark = page.events.len();
    reset_state(&mut page, "rate-status");
    page.click(&star(1, "5"));
    assert_eq!(settle(&mut page, "rate-status"), "invalid");
    let status = page.eval("cmTest.text('rate-status')");
    assert_eq!(status["error"], true, "{status}");
    assert!(
        status["text"].as_str().unwrap().contains("write token"),
        "{status}"
    );
    assert_eq!(
        page.requests(mark),
        vec![],
        "a rating went out without a token"
    );
    assert_no_problems(&mut page, mark, "rating without a token");

    // --- a wrong token: the server's 401, said plainly; the token is dropped -------------
    let mark = page.events.len();
    page.type_into("token-input", "not-the-token");
    page.press_enter();
    assert_eq!(
        page.eval("sessionStorage.getItem('cinematch.writeToken')"),
        json!("not-the-token")
    );
    reset_state(&mut page, "rate-status");
    page.click(&star(1, "5"));
    assert_eq!(settle(&mut page, "rate-status"), "error");
    let status = page.eval("cmTest.text('rate-status')");
    assert_eq!(status["error"], true, "{status}");
    let text = status["text"].as_str().unwrap();
    assert!(
        text.contains("refused the write token") && text.contains("not valid"),
        "{status}"
    );
    assert_eq!(
        page.eval("sessionStorage.getItem('cinematch.writeToken')"),
        Value::Null,
        "a refused token stays kept"
    );
    assert_eq!(
        page.eval("document.getElementById('onboard').dataset.token"),
        json!("unset")
    );
    assert_eq!(
        page.requests(mark),
        vec![(format!("{origin}/api/ratings"), 401)]
    );
    assert_only_refused(
        &mut page,
        mark,
        "a refused token gave more than a failed request",
    );
    assert_eq!(
        get_json(&server, &format!("/api/users/{user}/ratings"))["total"],
        0,
        "a refused rating was stored"
    );

    // --- the real token, kept in the tab's session storage only -------------------------
    page.type_into("token-input", TOKEN);
    page.press_enter();
    assert_eq!(
        page.eval("sessionStorage.getItem('cinematch.writeToken')"),
        json!(TOKEN)
    );
    assert_eq!(
        page.eval("document.getElementById('token-input').value"),
        json!(""),
        "the field keeps the token"
    );
    assert_eq!(
        page.eval(&format!(
            "document.documentElement.outerHTML.includes({TOKEN:?})"
        )),
        json!(false),
        "the token is in the page's DOM"
    );

    // --- five ratings through the stars; the list follows each -------------------------
    // Three found by title (Toy Story, Toy Story 2, Finding Nemo), then two
    // from the user's own list: its first animation or children's movie,
    // half a star less for the last (the stars rate in halves).
    let searched: [(i64, &str); 3] = [
        (1, "toy story"),
        (3114, "toy story 2"),
        (6377, "finding nemo"),
    ];
    let mark = page.events.len();
    let mut lists = vec![popular];
    // (movie id, title, stars) of every rating given.
    let mut five: Vec<(i64, String, String)> = Vec::new();
    for n in 0..5 {
        let (id, stars, from_list) = if let Some(&(id, query)) = searched.get(n) {
            find_title(&mut page, query, id);
            (id, "5", false)
        } else {
            let kid = page.eval(
                "(() => { const li = Array.from(document.querySelectorAll('#user-recs > li')).find(li => \
                 /\\b(Animation|Children)\\b/.test(li.querySelector('.meta').textContent)) \
                 || document.querySelector('#user-recs > li'); return Number(li.dataset.movieId); })()",
            );
            (
                kid.as_i64().unwrap(),
                if n == 3 { "5" } else { "4.5" },
                true,
            )
        };
        let title = get_json(&server, &format!("/api/movies/{id}"))["title"]
            .as_str()
            .unwrap()
            .to_string();
        reset_state(&mut page, "rate-status");
        if from_list {
            page.click(&format!(
                "#user-recs > li[data-movie-id=\"{id}\"] .stars > button[data-value=\"{stars}\"]"
            ));
        } else {
            page.click(&star(id, stars));
        }
        assert_eq!(settle(&mut page, "rate-status"), "done", "rating {title}");
        five.push((id, title.clone(), stars.to_string()));
        assert_eq!(
            page.eval("document.getElementById('user-recs').dataset.state"),
            json!("done"),
            "the list was not refreshed after rating {title}"
        );
        // The movie shows the rating given: in the matches when found by
        // title, in the Rated list always.
        let want_on = (stars.parse::<f64>().unwrap() * 2.0) as i64;
        let mut places = vec!["#user-rated"];
        if !from_list {
            places.push("#movie-matches");
        }
        for place in places {
            let shown = page.eval(&format!(
                "(() => {{ const s = document.querySelector('{place} > li[data-movie-id=\"{id}\"] .stars'); \
                 return [s.dataset.rating, s.querySelectorAll('.star.on').length]; }})()"
            ));
            assert_eq!(
                shown,
                json!([stars, want_on]),
                "the stars of {title} in {place}"
            );
        }
        // Every rating so far is in the Rated list, which says it is all.
        let rated: Vec<i64> = page_items(&mut page, "user-rated")
            .iter()
            .map(|(id, _)| *id)
            .collect();
        let mut want: Vec<i64> = five.iter().map(|r| r.0).collect();
        want.sort_unstable();
        let mut got = rated.clone();
        got.sort_unstable();
        assert_eq!(got, want, "the Rated list after {title}");
        assert_eq!(
            page.eval("document.getElementById('rated-title').textContent"),
            json!(format!("Rated: all {}", n + 1))
        );
        // A personal list from the first rating on, computed anew each time.
        assert_eq!(
            page.eval("document.getElementById('user-recs').dataset.strategy"),
            json!("fold-in"),
            "after rating {title}"
        );
        let list = page_items(&mut page, "user-recs");
        assert_eq!(list.len(), 10);
        assert!(
            list.iter().all(|(m, _)| !five.iter().any(|r| r.0 == *m)),
            "a rated movie is recommended: {list:?}"
        );
        lists.push(list);
    }
    let titles: Vec<String> = five.iter().map(|r| r.1.clone()).collect();
    assert_ne!(
        lists[0], lists[1],
        "the first rating did not change the list"
    );
    assert_ne!(lists[1], lists[5], "later ratings did not change the list");
    assert_no_problems(&mut page, mark, "rating five movies");
    for (url, status) in page.requests(mark) {
        assert!(
            url.starts_with(&format!("{origin}/api/")) && (status == 200 || status == 201),
            "onboarding requested {url}: {status}"
        );
    }
    // The token went out with the five ratings and the user's own ratings
    // and list, to this server, and nothing else.
    let with_token = page.authorized_requests(mark);
    let posts = with_token.iter().filter(|r| r.0 == "POST").count();
    assert_eq!(posts, 5, "{with_token:?}");
    let own = format!("{origin}/api/users/{user}/");
    for (method, url, auth) in &with_token {
        assert_eq!(auth, &format!("Bearer {TOKEN}"));
        assert!(
            (method == "POST" && *url == format!("{origin}/api/ratings"))
                || (method == "GET" && url.starts_with(&own)),
            "the token went with {method} {url}"
        );
    }

    // --- the list now: labelled fold-in, kids' movies, explained by the five ------------
    let api = get_json(&server, &format!("/api/users/{user}/recommendations"));
    assert_eq!(api["strategy"], "fold-in", "{api}");
    assert_eq!(api["modelVersion"], ease.run.model_version.as_str());
    let recs = page_items(&mut page, "user-recs");
    assert_eq!(
        recs,
        api_items(&api["items"]),
        "the page shows the API's list"
    );
    let heading = page.eval("document.getElementById('recs-title').textContent");
    assert!(heading.as_str().unwrap().contains("fold-in"), "{heading}");
    let status = page.eval("cmTest.text('user-status')");
    assert!(
        status["text"].as_str().unwrap().contains("fold-in")
            && status["text"].as_str().unwrap().contains("5 ratings"),
        "{status}"
    );
    let kids = kids_shown(&mut page);
    assert!(
        kids >= 4,
        "{kids} of 10 animation or children's movies: {recs:?}"
    );
    let because = page.eval(
        "Array.from(document.querySelectorAll('#user-recs > li')).map(li => \
         { const b = li.querySelector('.because'); return b ? b.textContent : ''; })",
    );
    let because: Vec<&str> = because
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert_eq!(because.len(), 10);
    for (why, item) in because.iter().zip(&recs) {
        assert!(
            why.starts_with("because you rated ")
                && titles.iter().any(|t| why.contains(t.as_str())),
            "{item:?} is not explained by the movies rated: {why:?}"
        );
    }
    // What was stored: the five, with the stars given.
    let stored = get_json(&server, &format!("/api/users/{user}/ratings"));
    assert_eq!(stored["total"], 5, "{stored}");
    for (id, _, stars) in &five {
        let r = stored["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["movieId"] == *id)
            .unwrap_or_else(|| panic!("movie {id} not stored: {stored}"));
        assert_eq!(r["rating"].as_f64(), stars.parse::<f64>().ok(), "{r}");
    }

    // --- a reload in the same tab: the token is still kept, the page still has none -----
    let mark = page.events.len();
    page.navigate(&format!("{origin}/?user={user}"));
    assert_eq!(page.eval(HELPERS), json!(true));
    assert_eq!(settle(&mut page, "user-recs"), "done");
    assert_eq!(page_items(&mut page, "user-recs"), recs);
    assert_eq!(
        page.eval("document.getElementById('onboard').dataset.token"),
        json!("set")
    );
    assert_eq!(
        page.eval(&format!(
            "document.documentElement.outerHTML.includes({TOKEN:?})"
        )),
        json!(false)
    );
    assert_no_problems(&mut page, mark, "reloading");
    assert!(!server.get("/").text().contains(TOKEN));

    // --- the registry: compare the two versions, promote one, roll back -----------------
    let ease_v = ease.run.model_version.clone();
    let mark = page.events.len();
    for v in [&ease_v, &svd] {
        page.click(&format!("#model-table input.cmp[value=\"{v}\"]"));
    }
    reset_state(&mut page, "model-status");
    page.click("#compare-btn");
    assert_eq!(settle(&mut page, "model-status"), "done");
    let cmp = page.eval(
        "(() => { const t = document.getElementById('compare-table'); return { \
         head: Array.from(t.querySelectorAll('thead th')).map(th => th.textContent), \
         rows: Object.fromEntries(Array.from(t.querySelectorAll('tbody tr')).map(tr => \
           [tr.dataset.row, Array.from(tr.querySelectorAll('td')).map(td => td.textContent)])) }; })()",
    );
    // Newest first, as in the table.
    assert_eq!(
        cmp["head"],
        json!(["Metric / hyperparameter", svd, ease_v]),
        "{cmp}"
    );
    let rows = &cmp["rows"];
    assert_eq!(rows["Algorithm"], json!(["svd", "ease"]), "{cmp}");
    let models = get_json(&server, "/api/models");
    let api_model = |v: &str| {
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["modelVersion"] == v)
            .unwrap()
            .clone()
    };
    let (svd_api, ease_api) = (api_model(&svd), api_model(&ease_v));
    // The ranker shows its catalogue numbers; only the spec's rated
    // precision is the rating model's alone.
    let four = |v: &Value| format!("{:.4}", v.as_f64().unwrap_or_else(|| panic!("{v}")));
    assert_eq!(
        rows["P@10 (the list a user sees)"],
        json!([
            four(&svd_api["cataloguePrecisionAt10"]),
            four(&ease_api["cataloguePrecisionAt10"])
        ]),
        "{cmp}"
    );
    assert_eq!(
        rows["NDCG@10 (the list a user sees)"],
        json!([four(&svd_api["ndcgAt10"]), four(&ease_api["ndcgAt10"])])
    );
    assert_eq!(
        rows["P@10 (rated items ≥3.5)"],
        json!([four(&svd_api["precisionAt10"]), "\u{2013}"]),
        "{cmp}"
    );
    // Hyperparameters side by side: svd's factors, ease's lambda.
    assert_eq!(rows["factors"], json!(["16", ""]), "{cmp}");
    assert_eq!(rows["lambda"][0], "", "{cmp}");
    assert_ne!(rows["lambda"][1], "", "{cmp}");
    // The ranker's catalogue P@10 in the models table is a number too.
    let p10 = page.eval(&format!(
        "document.querySelector('#model-table tr[data-version=\"{ease_v}\"]').children[6].textContent"
    ));
    assert_eq!(p10, json!(four(&ease_api["cataloguePrecisionAt10"])));

    // Promote the svd version from the page, then roll back.
    reset_state(&mut page, "model-status");
    page.click(&format!(
        "#model-table tr[data-version=\"{svd}\"] button.promote"
    ));
    assert_eq!(settle(&mut page, "model-status"), "done");
    assert_eq!(get_json(&server, "/api/models")["champion"], json!(svd));
    let shown = page.eval(&format!(
        "[document.querySelector('#model-table tr[data-version=\"{svd}\"]').classList.contains('is-champion'), \
          document.querySelector('#model-table tr[data-version=\"{svd}\"] button.promote').hidden, \
          document.querySelector('#model-table tr[data-version=\"{ease_v}\"] button.promote').hidden, \
          document.getElementById('champion-version').textContent]"
    ));
    assert_eq!(shown, json!([true, true, false, svd]), "{shown}");
    reset_state(&mut page, "model-status");
    page.click("#rollback-btn");
    assert_eq!(settle(&mut page, "model-status"), "done");
    assert_eq!(get_json(&server, "/api/models")["champion"], json!(ease_v));
    assert_eq!(
        page.eval("document.getElementById('champion-version').textContent"),
        json!(ease_v)
    );
    assert_no_problems(&mut page, mark, "comparing, promoting, rolling back");
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        page.authorized_requests(mark),
        vec![
            (
                "POST".to_string(),
                format!("{origin}/api/models/{svd}/promote"),
                bearer.clone()
            ),
            (
                "POST".to_string(),
                format!("{origin}/api/models/rollback"),
                bearer
            ),
        ]
    );
    // Usable on a phone and on a wide screen, no sideways scroll.
    check_widths(&mut page, &format!("onboarding-{}", backend(&db)));
    // Nothing to show, no section: no backtest, no list quality rows.
    assert_eq!(
        page.eval("[!!document.getElementById('backtest'), !!document.getElementById('quality')]"),
        json!([false, false])
    );
    assert_no_problems(&mut page, mark, "resizing");

    // Forget: gone from the tab.
    page.click("#token-forget");
    assert_eq!(
        page.eval("sessionStorage.getItem('cinematch.writeToken')"),
        Value::Null
    );
    assert_eq!(
        page.eval("(() => { const e = document.getElementById('js-errors'); return e.hidden && e.childElementCount === 0; })()"),
        json!(true)
    );
    drop(page);
    drop(browser);
    eprintln!("onboarding test took {:?}", started.elapsed());
}

/// A backtest row of one policy (`weekly`) over three weeks, with the
/// served lists' and the baselines' NDCG@10 the chart must show.
fn backtest_row() -> BacktestRow {
    let scores = |ndcg: f64| ListScores {
        all: GroupScore {
            users: 10,
            ndcg_at_10: ndcg,
            recall_at_10: ndcg,
        },
        ..ListScores::default()
    };
    let weeks: Vec<WeekResult> = [(0.30, 0.10, 0.20), (0.32, 0.11, 0.19), (0.35, 0.12, 0.21)]
        .into_iter()
        .enumerate()
        .map(|(i, (served, most_rated, trending))| WeekResult {
            week: i as u32 + 1,
            ratings: 100,
            first_timestamp: 0,
            last_timestamp: 0,
            scores: WeekScores {
                served: scores(served),
                most_rated: scores(most_rated),
                trending: scores(trending),
            },
            champion: "v1".into(),
            cold_start: "most-rated".into(),
            retrain_alerts: vec![],
            info_alerts: vec![],
            retrained: false,
            promoted: false,
            seconds: 1.0,
        })
        .collect();
    let policy = PolicyResult {
        policy: "weekly".into(),
        weeks,
        mean: WeekScores::default(),
        retrains: 0,
        alert_weeks: 0,
        algorithm: "svd".into(),
        params: json!({}),
        refit: false,
        seconds: 3.0,
    };
    BacktestRow {
        id: 0,
        backtest_id: "bt_test".into(),
        created_at: chrono::Utc::now().naive_utc(),
        policy: "weekly".into(),
        source: "ml-latest-small".into(),
        served_ndcg_at_10: Some(0.32),
        most_rated_ndcg_at_10: Some(0.11),
        trending_ndcg_at_10: Some(0.2),
        report: serde_json::to_string(&policy).unwrap(),
    }
}

/// At 1,400 and 390 CSS pixels wide the page scrolls only down (no
/// horizontal scroll), and a full-page screenshot of each is saved as
/// `target/screenshots/NAME-WIDTH.png` for a person to look at.
fn check_widths(page: &mut Page, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    for width in [1400u32, 390] {
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}),
        );
        let fit = page.eval(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r([ \
             document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth, \
             Array.from(document.querySelectorAll('main *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 \
               && !e.closest('.scroll')).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)]))))",
        );
        let (scroll, inner) = (fit[0].as_u64().unwrap(), fit[1].as_u64().unwrap());
        assert_eq!(inner, u64::from(width), "{fit}");
        assert!(
            scroll <= inner && fit[2].as_u64().unwrap() <= inner,
            "at {width} px the page scrolls sideways ({scroll} > {inner}); too wide: {}",
            fit[3]
        );
        let height = page
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .as_u64()
            .unwrap()
            .min(16_000);
        let shot = page.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}),
        );
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        std::fs::write(dir.join(format!("{name}-{width}.png")), png).expect("save screenshot");
        // And in parts a person can read at full size.
        let part = if width > 600 { 1000 } else { 1600 };
        for (i, top) in (0..height).step_by(part as usize).take(9).enumerate() {
            let shot = page.call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": top, "width": width, "height": part.min(height - top), "scale": 1}}),
            );
            let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
            std::fs::write(dir.join(format!("{name}-{width}-part{}.png", i + 1)), png)
                .expect("save screenshot");
        }
    }
    page.call("Emulation.clearDeviceMetricsOverride", json!({}));
}

/// Standard base64 (DevTools' screenshots), without a crate for it.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | value(*c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// `pg` or `sqlite`, for file names.
fn backend(db: &TestDb) -> &'static str {
    match db {
        TestDb::Pg(_) => "pg",
        TestDb::Sqlite(_) => "sqlite",
    }
}

/// The star button worth `stars` of the match `movie_id`.
fn star(movie_id: i64, stars: &str) -> String {
    format!(
        "#movie-matches > li[data-movie-id=\"{movie_id}\"] .stars > button[data-value=\"{stars}\"]"
    )
}

/// Searches `query` in the explorer and checks `movie_id` is among the matches.
fn find_title(page: &mut Page, query: &str, movie_id: i64) {
    assert_eq!(
        submit(page, "movie-input", query, "movie-similar"),
        "done",
        "searching {query:?}"
    );
    let matches = page_items(page, "movie-matches");
    assert!(
        matches.iter().any(|(id, _)| *id == movie_id),
        "movie {movie_id} is not among the matches of {query:?}: {matches:?}"
    );
}

/// How many recommended movies the page shows as Animation or Children.
fn kids_shown(page: &mut Page) -> u64 {
    page.eval(
        "Array.from(document.querySelectorAll('#user-recs > li > .meta')).filter(m => \
         /\\b(Animation|Children)\\b/.test(m.textContent)).length",
    )
    .as_u64()
    .unwrap()
}

fn value_of_point(p: &Value) -> f64 {
    p["data"]["value"].as_str().unwrap().parse().unwrap()
}

/// The read token of the private-lists test's server.
const READ_TOKEN: &str = "r3ad-only-t0ken";

/// On a server with a read token, a user's lists in the explorer need a
/// token: without one the page says the lists are private (the server's
/// 401 and nothing else went wrong); with the read token typed in, the
/// user's list is shown, equal to the API's, and the token went only with
/// that user's two requests, to this server.
#[test]
fn explorer_with_a_read_token() {
    let db = TestDb::Sqlite(common::SqliteDb::new());
    let browser = Chromium::launch();
    let mut store = db.store();
    load_small(store.as_mut());
    train(store.as_mut(), 1);
    let server = TestServer::start(db.url(), |c| {
        c.api_token = Some(TOKEN.into());
        c.read_token = Some(READ_TOKEN.into());
    });
    server.wait_ready();
    let origin = format!("http://{}", server.addr);
    let mut page = Page::open(&browser);
    page.navigate(&format!("{origin}/"));
    assert_eq!(page.eval(HELPERS), json!(true));
    assert_no_problems(&mut page, 0, "loading the dashboard");

    // --- no token: private, said plainly ---------------------------------------------
    let mark = page.events.len();
    assert_eq!(submit(&mut page, "user-input", "1", "user-recs"), "error");
    let status = page.eval("cmTest.text('user-status')");
    assert_eq!(status["error"], true, "{status}");
    let text = status["text"].as_str().unwrap();
    assert!(
        text.contains("private") && text.contains("read or write token"),
        "{status}"
    );
    assert!(page_items(&mut page, "user-recs").is_empty());
    assert_eq!(
        page.requests(mark),
        vec![(format!("{origin}/api/users/1/recommendations?k=10"), 401)]
    );
    assert!(page.authorized_requests(mark).is_empty());
    assert_only_refused(
        &mut page,
        mark,
        "a private list gave more than a refused request",
    );

    // --- the read token: the user's list ---------------------------------------------
    page.type_into("token-input", READ_TOKEN);
    page.press_enter();
    let mark = page.events.len();
    assert_eq!(submit(&mut page, "user-input", "1", "user-recs"), "done");
    assert_no_problems(
        &mut page,
        mark,
        "showing a private list with the read token",
    );
    let api = support::http(
        server.addr,
        "GET",
        "/api/users/1/recommendations?k=10",
        &[("Authorization", &format!("Bearer {READ_TOKEN}"))],
        b"",
    );
    assert_eq!(api.status, 200, "{}", api.text());
    let api = api.json();
    assert_eq!(api["strategy"], "model");
    assert_eq!(page_items(&mut page, "user-recs"), api_items(&api["items"]));
    let bearer = format!("Bearer {READ_TOKEN}");
    assert_eq!(
        page.authorized_requests(mark),
        vec![
            (
                "GET".to_string(),
                format!("{origin}/api/users/1/recommendations?k=10"),
                bearer.clone()
            ),
            (
                "GET".to_string(),
                format!("{origin}/api/users/1/ratings?limit=1000"),
                bearer
            ),
        ]
    );
}

on_both_backends!(
    dashboard_in_headless_chromium,
    onboarding_in_headless_chromium
);
