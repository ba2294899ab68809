//! Hostile test guest: tries to open sockets.
//!
//! `lines` → `dial` → `out`: passes each record through, and misbehaves on a record
//! containing `TRIGGER`.

use spillway_guest::Pipeline;

fn build(p: &mut Pipeline) {
    p.source("lines")
        .transform("dial", |line, out| {
            if line.value.windows(7).any(|w| w == b"TRIGGER") {
                let text = String::from_utf8_lossy(line.value);
                let address = text.split_whitespace().last().unwrap_or("127.0.0.1:9").to_owned();
                return Err(dial(&address));
            }
            out.emit(None, line.time, line.value);
            Ok::<_, String>(())
        })
        .sink("out");
}

spillway_guest::export_pipeline!(build);

/// Tries to connect to `address`, to listen, and to look up a name; says what happened.
fn dial(address: &str) -> String {
    let connect = std::net::TcpStream::connect(address).map(|_| "LEAK connected".to_owned());
    let listen = std::net::TcpListener::bind("0.0.0.0:0").map(|_| "LEAK listening".to_owned());
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").map(|_| "LEAK bound".to_owned());
    let lookup = std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
        .map(|a| format!("LEAK {} addresses", a.count()));
    let show = |r: std::io::Result<String>| r.unwrap_or_else(|e| format!("error: {e}"));
    format!(
        "connect to {address}: {}; listen: {}; udp: {}; look up localhost: {}",
        show(connect),
        show(listen),
        show(udp),
        show(lookup),
    )
}
