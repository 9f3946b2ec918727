//! A message broker whose connection handlers "died on `unwrap()`": the
//! handler is `#[exit_path]`, so a malformed request that makes it return an
//! error through `?` and one that makes it panic are both recorded, with the
//! site and the panic location, while the server keeps serving.
//!
//! The protocol is one request per line: `PUB <topic> <payload>` answers
//! `OK <n>` (the topic's message count), `GET <topic>` answers
//! `<n>`. Anything else is malformed.
//!
//! ```sh
//! cargo run --example broker -- --selftest     # serve, send the requests, exit
//! cargo run --example broker                   # serve on 127.0.0.1:7878
//! printf 'PUB news\n' | nc 127.0.0.1 7878      # a handler panics, the server goes on
//! jq -c 'select(.kind == "fn_exit" or .kind == "panic") | {kind, site, line, outcome, error, location}' \
//!    logs/broker.jsonl
//! ```
//!
//! The log goes to `$LASTWORDS_PATH`, else `logs/broker.jsonl`.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Message counts per topic.
type Topics = Arc<Mutex<HashMap<String, u64>>>;

#[derive(Debug)]
enum BrokerError {
    Io(io::Error),
    UnknownCommand(String),
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerError::Io(_) => write!(f, "connection I/O failed"),
            BrokerError::UnknownCommand(verb) => write!(f, "unknown command {verb:?}"),
        }
    }
}

impl std::error::Error for BrokerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BrokerError::Io(e) => Some(e),
            BrokerError::UnknownCommand(_) => None,
        }
    }
}

impl From<io::Error> for BrokerError {
    fn from(e: io::Error) -> Self {
        BrokerError::Io(e)
    }
}

enum Request<'a> {
    Publish { topic: &'a str, payload: &'a str },
    Get { topic: &'a str },
}

/// Parses one request line. The payload of `PUB` is taken on trust, which
/// is the bug the log will point at.
fn parse_request(line: &str) -> Result<Request<'_>, BrokerError> {
    let mut parts = line.splitn(3, ' ');
    match parts.next().unwrap_or_default() {
        "PUB" => {
            let topic = parts.next().unwrap_or_default();
            let payload = parts.next().unwrap();
            Ok(Request::Publish { topic, payload })
        }
        "GET" => Ok(Request::Get {
            topic: parts.next().unwrap_or_default(),
        }),
        verb => Err(BrokerError::UnknownCommand(verb.to_owned())),
    }
}

/// Serves one connection until the client closes it.
#[lastwords::exit_path]
async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    topics: Topics,
) -> Result<(), BrokerError> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match parse_request(&line)? {
            Request::Publish { topic, payload } => {
                let mut topics = topics.lock().unwrap_or_else(|e| e.into_inner());
                let n = topics.entry(topic.to_owned()).or_default();
                *n += 1;
                tracing::info!(%peer, topic, bytes = payload.len(), "published");
                format!("OK {n}\n")
            }
            Request::Get { topic } => {
                let topics = topics.lock().unwrap_or_else(|e| e.into_inner());
                format!("{}\n", topics.get(topic).copied().unwrap_or(0))
            }
        };
        writer.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

/// Accepts connections forever, one task per connection: a handler that
/// fails or panics ends its own task, never the server.
async fn serve(listener: TcpListener) -> io::Result<()> {
    let topics = Topics::default();
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(handle_connection(stream, peer, Arc::clone(&topics)));
    }
}

/// Sends one request on a new connection; returns the first reply line,
/// empty when the server closed the connection without answering.
async fn request(addr: SocketAddr, line: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    stream.shutdown().await?;
    // Read to EOF: the server closes the connection when the handler
    // returns, so the handler (and its record) is done when this returns.
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    Ok(reply.lines().next().unwrap_or_default().to_owned())
}

/// Starts the server, sends a good request, two malformed ones and a good
/// one again, and checks that the server kept serving.
async fn selftest() -> io::Result<bool> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener));
    lastwords::crumb!("selftest: server listening");
    let mut ok = true;
    for (line, expected) in [
        ("PUB news hello", "OK 1"),
        ("SUBSCRIBE news", ""), // unknown command: the handler returns Err
        ("PUB news", ""),       // no payload: the handler panics
        ("PUB news again", "OK 2"),
        ("GET news", "2"),
    ] {
        let reply = request(addr, line).await?;
        println!("{line:>16} -> {reply:?}");
        ok &= reply == expected;
    }
    server.abort();
    Ok(ok)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if let Err(e) = lastwords::init().install() {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let selftest_only = match std::env::args().nth(1).as_deref() {
        Some("--selftest") => true,
        None => false,
        Some(_) => {
            eprintln!("usage: broker [--selftest]");
            return ExitCode::from(2);
        }
    };
    let result = if selftest_only {
        selftest().await
    } else {
        match TcpListener::bind("127.0.0.1:7878").await {
            Ok(listener) => {
                println!("broker listening on 127.0.0.1:7878");
                serve(listener).await.map(|()| true)
            }
            Err(e) => Err(e),
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            tracing::error!("selftest: a reply was not the expected one");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!(error = &e as &dyn std::error::Error, "broker failed");
            ExitCode::FAILURE
        }
    }
}
