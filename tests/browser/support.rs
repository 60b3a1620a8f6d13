//! Shared by the server and browser tests: the server running
//! in-process on an ephemeral port, a minimal HTTP/1.1 client over a plain
//! TcpStream (what any client sends, nothing clever), and the dataset.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cinematch::models::{Hyperparams, SvdParams};
use cinematch::pipeline::load::{self, LoadOptions, Source};
use cinematch::progress::Silent;
use cinematch::registry::{self, TrainOptions};
use cinematch::server::{self, ServerConfig};
use cinematch::store::Store;

use crate::common::shared_data;

/// ml-latest-small, split as `cinematch load` splits it.
pub fn load_small(store: &mut dyn Store) {
    load::load(
        store,
        &Source::Dir(shared_data("ml-latest-small")),
        &LoadOptions::default(),
        &Silent,
    )
    .expect("load ml-latest-small");
}

/// A quick SVD (16 factors, 5 epochs): real factors, so similar movies come
/// from the model, in well under a second, with every metric (ranking ones
/// too) for the dashboard's charts. Returns the version.
pub fn train(store: &mut dyn Store, seed: u64) -> String {
    let mut opts = TrainOptions::new(Hyperparams::Svd(SvdParams {
        factors: 16,
        epochs: 5,
        ..SvdParams::default()
    }));
    opts.seed = seed;
    // The first model is the champion; later ones only by hand.
    opts.promote = false;
    registry::train(store, &opts, &Silent)
        .expect("train")
        .run
        .model_version
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response {} is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect to the test server");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request head");
    // A server may answer (413) before reading a large body; what matters
    // is the answer, so a failed body write is not an error here.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A signal (e.g. SIGCHLD from a child process of another test)
            // interrupted the read; nothing was lost, read again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if !buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the response to {method} {path}: {e}"),
        }
    }
    parse_response(&buf).unwrap_or_else(|| {
        panic!(
            "malformed response to {method} {path}: {:?}",
            String::from_utf8_lossy(&buf)
        )
    })
}

fn parse_response(buf: &[u8]) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let raw = &buf[end + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        let mut out = Vec::new();
        let mut rest = raw;
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&rest[..nl]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        out
    } else {
        raw.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

/// `POST /api/ratings` to `addr` with the write token `token` and an
/// Idempotency-Key when given.
pub fn post_ratings(addr: SocketAddr, token: &str, key: Option<&str>, body: &str) -> Resp {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    if let Some(k) = key {
        headers.push(("Idempotency-Key", k));
    }
    http(addr, "POST", "/api/ratings", &headers, body.as_bytes())
}

/// `cinematch serve` in-process on 127.0.0.1:0, stopped (gracefully) on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts with a 200 ms reload interval; `configure` may change the rest.
    pub fn start(db_url: &str, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().unwrap();
        let mut config = ServerConfig::new(addr, db_url);
        config.reload_interval = Duration::from_millis(200);
        configure(&mut config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            if let Err(e) = server::serve_on(listener, config, async move {
                let _ = stopped.await;
            })
            .await
            {
                panic!("server failed: {e}");
            }
        });
        TestServer {
            addr,
            rt: Some(rt),
            stop: Some(stop),
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        http(self.addr, "GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, token: Option<&str>, body: &str) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = auth.as_deref() {
            headers.push(("Authorization", a));
        }
        http(self.addr, "POST", path, &headers, body.as_bytes())
    }

    /// [`post_ratings`] to this server.
    pub fn post_ratings(&self, token: &str, key: Option<&str>, body: &str) -> Resp {
        post_ratings(self.addr, token, key, body)
    }

    /// Polls `ok` every 50 ms; panics with `what` after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, ok: impl Fn(&TestServer) -> bool) {
        let start = Instant::now();
        while !ok(self) {
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The value of the unlabelled sample `name` in this server's `/metrics`.
    #[track_caller]
    pub fn gauge(&self, name: &str) -> f64 {
        gauge(&self.get("/metrics").text(), name)
    }

    /// Waits for `/readyz` to say 200 (database reachable, champion loaded).
    pub fn wait_ready(&self) {
        self.wait_until("/readyz to answer 200", Duration::from_secs(60), |s| {
            s.get("/readyz").status == 200
        });
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// The value of an unlabelled sample (`name value`) in a `/metrics` page.
#[track_caller]
pub fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}
