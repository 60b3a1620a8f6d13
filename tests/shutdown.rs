//! `cinematch serve` stopped by SIGTERM (a service manager, `docker stop`,
//! Kubernetes) or SIGINT (Ctrl-C): the real binary against a SQLite file and
//! a PostgreSQL database. A request in flight when the signal arrives is
//! answered and its rating stored, new connections are refused meanwhile,
//! and the process exits 0; a request that outlasts `--grace-secs` does not
//! keep the process alive, and a second signal stops it at once. The
//! scheduler stops on the same signals.
//!
//! The request in flight is an ordinary client's: a POST sent with
//! `Expect: 100-continue`, whose body follows only after the server has
//! parsed the head and started reading the body (it answers
//! `100 Continue` at that moment). No test hook in the binary is needed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestDb;

const TOKEN: &str = "shutdown-test-token";
/// How long any one step may take before the test gives up: generous, as
/// CI machines are shared; never a measured duration.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// A `cinematch` process, its stderr collected.
struct Proc {
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// The thread reading stderr; it ends at EOF, once the process is gone.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    fn start(db_url: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cinematch"))
            .args(["--db", db_url])
            .args(args)
            .env("CINEMATCH_API_TOKEN", TOKEN)
            .env_remove("CINEMATCH_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cinematch");
        let (stderr, reader) = common::capture_stderr(&mut child);
        Proc {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn wait_for_log(&mut self, needle: &str) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.read_to_end();
                if self.log().contains(needle) {
                    return; // among its last lines
                }
                panic!(
                    "cinematch exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < STEP_TIMEOUT,
                "no {needle:?} in the log within {STEP_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// Still running after a stop request: asserted while a request is in
    /// flight, so the drain (not the exit) is what refuses connections.
    fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            self.read_to_end();
            panic!("cinematch exited ({status}) {when}:\n{}", self.log());
        }
    }

    /// Waits for the stderr reader to reach the end of the stream (the
    /// process has exited), so the log holds every line it wrote.
    fn read_to_end(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stderr reader panicked");
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.read_to_end();
                return status;
            }
            assert!(
                start.elapsed() < STEP_TIMEOUT,
                "cinematch still running {STEP_TIMEOUT:?} after the stop request:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connects until the listener at `addr` is gone. A connection the
    /// kernel queued just before the listener closed is reset rather than
    /// refused, so successes are retried.
    fn wait_until_refused(&mut self, addr: SocketAddr) {
        let start = Instant::now();
        loop {
            self.assert_running("before it stopped accepting connections");
            match TcpStream::connect(addr) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                Err(e) => panic!("connecting to {addr}: {e}"),
                Ok(_) => {}
            }
            assert!(
                start.elapsed() < STEP_TIMEOUT,
                "new connections still accepted {STEP_TIMEOUT:?} after the stop request:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `cinematch serve` on an ephemeral port: the process and its address.
fn serve(db_url: &str, args: &[&str]) -> (Proc, SocketAddr) {
    let mut serve_args = vec!["serve", "--addr", "127.0.0.1:0"];
    serve_args.extend_from_slice(args);
    let mut server = Proc::start(db_url, &serve_args);
    // The start-up line "serving addr=Some(127.0.0.1:PORT) ...": waiting
    // for "serving" alone races "serving a new snapshot", which can come
    // first.
    server.wait_for_log("addr=Some(");
    let log = server.log();
    let at = log.find("addr=Some(").expect("the server logs its address") + 10;
    let addr: String = log[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    (server, addr.parse().expect("the logged address"))
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `POST /api/ratings` whose body the server is waiting for.
struct SlowPost {
    stream: TcpStream,
    body: Vec<u8>,
}

impl SlowPost {
    /// Sends the head with `Expect: 100-continue` and returns once the
    /// server answers `100 Continue`: the request is then in its handler.
    fn start(addr: SocketAddr, body: &str) -> SlowPost {
        let mut stream = TcpStream::connect(addr).expect("connect to the server");
        stream.set_read_timeout(Some(STEP_TIMEOUT)).unwrap();
        write!(
            stream,
            "POST /api/ratings HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nAuthorization: Bearer {TOKEN}\r\n\
             Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .expect("send the request head");
        let interim = read_head(&mut stream);
        assert!(
            interim.starts_with("HTTP/1.1 100 "),
            "expected 100 Continue, got {interim:?}"
        );
        SlowPost {
            stream,
            body: body.as_bytes().to_vec(),
        }
    }

    /// Sends the body and returns the final status and the response text.
    fn finish(mut self) -> (u16, String) {
        self.stream.write_all(&self.body).expect("send the body");
        let mut buf = Vec::new();
        self.stream
            .read_to_end(&mut buf)
            .expect("read the response");
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("malformed response: {text:?}"));
        (status, text)
    }
}

/// Reads one response head (up to the blank line).
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading a response head: {e}"),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn seeded(db: &TestDb) {
    let mut store = db.store();
    common::seed_low_rank(store.as_mut());
}

/// The body of one rating the low-rank seed's catalogue knows.
fn rating_body(user: i32) -> String {
    format!(r#"{{"userId": {user}, "movieId": 2, "rating": 4.5, "timestamp": 1700000000}}"#)
}

/// The signal arrives while a POST is in flight: the server stops
/// accepting, answers the POST, stores its rating and exits 0.
fn drains_in_flight_request(db: TestDb, signal: libc::c_int, name: &str) {
    seeded(&db);
    let (mut server, addr) = serve(db.url(), &["--grace-secs", "60", "--timeout-secs", "120"]);
    let slow = SlowPost::start(addr, &rating_body(900_001));

    server.signal(signal);
    server.wait_until_refused(addr);
    server.assert_running("once it stopped accepting connections");

    let (status, response) = slow.finish();
    assert_eq!(status, 201, "the request in flight: {response}");
    let status = server.wait_exit();
    let log = server.log();
    assert_eq!(status.code(), Some(0), "exit status {status}:\n{log}");
    assert!(log.contains(&format!("signal={name}")), "{log}");
    assert!(log.contains("every request finished"), "{log}");
    assert!(!log.contains("grace period is over"), "{log}");

    let stored: Vec<(i32, i32, f32)> = db
        .store()
        .buffer_ratings(None)
        .unwrap()
        .iter()
        .map(|r| (r.user_id, r.movie_id, r.rating))
        .collect();
    assert_eq!(stored, vec![(900_001, 2, 4.5)]);
}

fn sigterm_drains_requests_in_flight(db: TestDb) {
    drains_in_flight_request(db, libc::SIGTERM, "SIGTERM");
}

fn sigint_drains_requests_in_flight(db: TestDb) {
    drains_in_flight_request(db, libc::SIGINT, "SIGINT");
}

on_both_backends!(
    sigterm_drains_requests_in_flight,
    sigint_drains_requests_in_flight,
);

/// A request that never finishes does not hold the process past the grace
/// period: it exits 0, says that it gave up, and the client's connection
/// is closed without an answer.
#[test]
fn a_request_outlasting_the_grace_period_is_abandoned() {
    let db = TestDb::Sqlite(common::SqliteDb::new());
    seeded(&db);
    let (mut server, addr) = serve(db.url(), &["--grace-secs", "1", "--timeout-secs", "600"]);
    let mut slow = SlowPost::start(addr, &rating_body(900_002));

    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    let log = server.log();
    assert_eq!(status.code(), Some(0), "exit status {status}:\n{log}");
    assert!(log.contains("grace period is over"), "{log}");
    assert!(!log.contains("every request finished"), "{log}");

    let mut rest = Vec::new();
    let _ = slow.stream.write_all(&slow.body);
    let read = slow.stream.read_to_end(&mut rest);
    assert!(
        read.is_err() || rest.is_empty(),
        "the abandoned request got an answer: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(db.store().buffer_ratings(None).unwrap().is_empty());
}

/// Ctrl-C twice: the second signal ends the wait for requests in flight.
#[test]
fn a_second_signal_stops_at_once() {
    let db = TestDb::Sqlite(common::SqliteDb::new());
    seeded(&db);
    let (mut server, addr) = serve(db.url(), &["--grace-secs", "600", "--timeout-secs", "600"]);
    let _slow = SlowPost::start(addr, &rating_body(900_003));

    server.signal(libc::SIGINT);
    server.wait_for_log("no longer accepting connections");
    server.assert_running("after the first signal");
    server.signal(libc::SIGINT);
    let status = server.wait_exit();
    let log = server.log();
    assert_eq!(status.code(), Some(0), "exit status {status}:\n{log}");
    assert!(log.contains("second stop request"), "{log}");
    assert!(db.store().buffer_ratings(None).unwrap().is_empty());
}

/// The scheduler shares the server's signal handling: SIGTERM while it
/// waits for the next tick ends it cleanly, with exit status 0.
#[test]
fn sigterm_stops_the_scheduler_between_cycles() {
    let db = TestDb::Sqlite(common::SqliteDb::new());
    seeded(&db);
    let inbox = tempfile::tempdir().unwrap();
    let mut scheduler = Proc::start(
        db.url(),
        &[
            "scheduler",
            "--inbox",
            inbox.path().to_str().unwrap(),
            "--cron",
            "0 0 1 1 *",
        ],
    );
    scheduler.wait_for_log("waiting for the next tick");
    scheduler.signal(libc::SIGTERM);
    let status = scheduler.wait_exit();
    let log = scheduler.log();
    assert_eq!(status.code(), Some(0), "exit status {status}:\n{log}");
    assert!(log.contains("stop requested"), "{log}");
    assert!(log.contains("signal=SIGTERM"), "{log}");
    assert!(log.contains("scheduler stopped"), "{log}");
}
