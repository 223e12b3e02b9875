//! A fault-injecting HTTP/1.1 proxy for the end-to-end tests: it sits between its clients (the
//! tool, the engine pushing a build, syft) and the real loopback registry, forwards every
//! request, and fails the ones its rules pick: an HTTP error, a 429 with `Retry-After`, a
//! connection dropped in the middle of the response, or a stall past the client's timeout.
//! Everything it does is bounded in time, and it stops when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a rule does to a request it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers this status (500, 502, 503) without forwarding.
    Status(u16),
    /// Answers 429 Too Many Requests with `Retry-After: 1`.
    TooManyRequests,
    /// Forwards the request (so the registry acts on it), then closes the connection halfway
    /// through the response.
    DropMidResponse,
    /// Holds the request for this long without answering, then closes the connection.
    Stall(Duration),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Status(status) => write!(f, "HTTP {status}"),
            Fault::TooManyRequests => write!(f, "HTTP 429 + Retry-After"),
            Fault::DropMidResponse => write!(f, "dropped mid-response"),
            Fault::Stall(duration) => write!(f, "stall {}s", duration.as_secs()),
        }
    }
}

/// Who sent a request, from its `User-Agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// The tool's own registry client.
    Xtask,
    /// The engine pushing a build (`docker/...`, `buildkit/...`).
    Engine,
    /// Anything else: syft reading images.
    Other,
}

impl Client {
    fn of(agent: &str) -> Client {
        if agent.starts_with("battlescope-xtask") {
            Client::Xtask
        } else if agent.starts_with("docker/") || agent.starts_with("buildkit/") {
            Client::Engine
        } else {
            Client::Other
        }
    }
}

/// Which requests a rule looks at.
#[derive(Debug, Clone, Copy)]
pub struct Matcher {
    pub client: Client,
    pub method: Option<&'static str>,
    /// A fragment of the path: `/manifests/`, `/blobs/`, `/tags/list`.
    pub path: Option<&'static str>,
}

impl Matcher {
    fn matches(&self, request: &Seen) -> bool {
        Client::of(&request.agent) == self.client
            && self.method.is_none_or(|method| method == request.method)
            && self.path.is_none_or(|fragment| request.path.contains(fragment))
    }
}

/// Fails `times` requests matching `matcher`, after letting `skip` of them through, and only
/// once `armed_after` requests matching the second matcher have been seen.
#[derive(Debug, Clone)]
pub struct Rule {
    pub matcher: Matcher,
    pub skip: usize,
    pub times: usize,
    pub fault: Fault,
    pub armed_after: Option<(Matcher, usize)>,
}

/// One request the proxy saw, and the fault it injected into it, if any.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub agent: String,
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct State {
    rules: Vec<(Rule, usize)>,
    seen: Vec<Seen>,
}

impl State {
    /// Records the request and decides its fault.
    fn admit(&mut self, mut request: Seen) -> Option<Fault> {
        let mut fault = None;
        for (rule, matched) in &mut self.rules {
            let armed = rule
                .armed_after
                .as_ref()
                .is_none_or(|(trigger, count)| self.seen.iter().filter(|seen| trigger.matches(seen)).count() >= *count);
            if fault.is_none() && armed && rule.matcher.matches(&request) {
                *matched += 1;
                if *matched > rule.skip && *matched <= rule.skip.saturating_add(rule.times) {
                    fault = Some(rule.fault);
                }
            }
        }
        request.fault = fault;
        self.seen.push(request);
        fault
    }
}

pub struct FaultProxy {
    pub address: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `upstream` (`host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (upstream, accept_state, accept_stop) = (upstream.to_string(), state.clone(), stop.clone());
        std::thread::spawn(move || {
            for connection in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(connection) = connection else { continue };
                let (upstream, state, stop) = (upstream.clone(), accept_state.clone(), accept_stop.clone());
                std::thread::spawn(move || {
                    let _ = serve(connection, &upstream, &state, &stop);
                });
            }
        });
        FaultProxy { address, state, stop }
    }

    pub fn add_rule(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push((rule, 0));
    }

    /// Removes every rule: the registry behaves again.
    pub fn heal(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> usize {
        self.state.lock().unwrap().seen.iter().filter(|seen| seen.fault.is_some()).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.address);
    }
}

/// How long any socket read may block: nothing the proxy does waits longer than this.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// Serves one client connection, request by request (keep-alive), each over a fresh upstream
/// connection.
fn serve(client: TcpStream, upstream: &str, state: &Mutex<State>, stop: &AtomicBool) -> std::io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut first = [0u8; 1];
    if client.peek(&mut first)? == 1 && first[0] == 0x16 {
        // A TLS handshake: engines try HTTPS first and fall back to HTTP on the registry's
        // plain-HTTP answer, so pass the bytes through untouched.
        return tunnel(client, upstream);
    }
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let Some(head) = read_head(&mut reader)? else { return Ok(()) };
        let (method, path) = request_line(&head);
        let agent = header(&head, "user-agent").unwrap_or_default();
        let seen = Seen { method: method.clone(), path: path.clone(), agent, fault: None };
        let fault = state.lock().unwrap().admit(seen);
        match fault {
            Some(Fault::Status(status)) => {
                copy_body(&mut reader, &head, &mut std::io::sink(), false)?;
                return answer(&mut writer, status, "");
            }
            Some(Fault::TooManyRequests) => {
                copy_body(&mut reader, &head, &mut std::io::sink(), false)?;
                return answer(&mut writer, 429, "Retry-After: 1\r\n");
            }
            Some(Fault::Stall(duration)) => {
                let until = std::time::Instant::now() + duration;
                while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return writer.shutdown(Shutdown::Both);
            }
            None | Some(Fault::DropMidResponse) => {
                let server = TcpStream::connect(upstream)?;
                server.set_read_timeout(Some(IO_TIMEOUT))?;
                let mut server_writer = server.try_clone()?;
                server_writer.write_all(head.as_bytes())?;
                copy_body(&mut reader, &head, &mut server_writer, false)?;
                let mut server_reader = BufReader::new(server);
                let mut response_head = read_head(&mut server_reader)?.unwrap_or_default();
                // Interim answers (100 Continue) go through as they are.
                while response_head.starts_with("HTTP/1.1 1") {
                    writer.write_all(response_head.as_bytes())?;
                    response_head = read_head(&mut server_reader)?.unwrap_or_default();
                }
                if fault == Some(Fault::DropMidResponse) {
                    let mut body = Vec::new();
                    if method != "HEAD" {
                        copy_body(&mut server_reader, &response_head, &mut body, true)?;
                    }
                    // Half the body; with no body, half the head.
                    let whole: Vec<u8> = [response_head.as_bytes(), &body].concat();
                    let cut =
                        if body.len() > 1 { response_head.len() + body.len() / 2 } else { response_head.len() / 2 };
                    writer.write_all(&whole[..cut])?;
                    return writer.shutdown(Shutdown::Both);
                }
                writer.write_all(response_head.as_bytes())?;
                if method != "HEAD" && !no_body_status(&response_head) {
                    copy_body(&mut server_reader, &response_head, &mut writer, true)?;
                }
                writer.flush()?;
                if header(&response_head, "connection").is_some_and(|value| value.eq_ignore_ascii_case("close")) {
                    return Ok(());
                }
            }
        }
    }
}

fn tunnel(client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    server.set_read_timeout(Some(IO_TIMEOUT))?;
    let (mut client_reader, mut server_writer) = (client.try_clone()?, server.try_clone()?);
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut server_writer);
        let _ = server_writer.shutdown(Shutdown::Write);
    });
    let (mut server_reader, mut client_writer) = (server, client);
    let _ = std::io::copy(&mut server_reader, &mut client_writer);
    let _ = client_writer.shutdown(Shutdown::Both);
    let _ = upload.join();
    Ok(())
}

fn answer(writer: &mut TcpStream, status: u16, extra_headers: &str) -> std::io::Result<()> {
    // What registries and the proxies in front of them answer: distribution's JSON errors,
    // and a gateway's HTML page for 502.
    let (reason, content_type, body) = match status {
        429 => (
            "Too Many Requests",
            "application/json",
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests"}]}"#,
        ),
        500 => (
            "Internal Server Error",
            "application/json",
            r#"{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}"#,
        ),
        502 => (
            "Bad Gateway",
            "text/html",
            "<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
        ),
        _ => (
            "Service Unavailable",
            "application/json",
            r#"{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}"#,
        ),
    };
    write!(
        writer,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    writer.flush()
}

/// The request or status line and headers, up to the empty line; `None` at end of stream.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(if head.is_empty() { None } else { Some(head) });
        }
        head.push_str(&line);
        if line == "\r\n" || line == "\n" {
            return Ok(Some(head));
        }
    }
}

fn request_line(head: &str) -> (String, String) {
    let mut parts = head.split_whitespace();
    (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string())
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
}

fn no_body_status(response_head: &str) -> bool {
    let status = response_head.split_whitespace().nth(1).unwrap_or_default();
    matches!(status, "204" | "304") || status.starts_with('1')
}

/// Copies a message body framed by `Content-Length` or chunked encoding; a response with
/// neither runs to the end of the stream.
fn copy_body(reader: &mut impl BufRead, head: &str, out: &mut impl Write, response: bool) -> std::io::Result<()> {
    if header(head, "transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            out.write_all(size_line.as_bytes())?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                        out.write_all(line.as_bytes())?;
                        return Ok(());
                    }
                    out.write_all(line.as_bytes())?;
                }
            }
            std::io::copy(&mut reader.by_ref().take(size as u64 + 2), out)?;
        }
    }
    match header(head, "content-length").and_then(|value| value.parse::<u64>().ok()) {
        Some(length) => std::io::copy(&mut reader.by_ref().take(length), out).map(|_| ()),
        None if response => std::io::copy(reader, out).map(|_| ()),
        None => Ok(()),
    }
}
