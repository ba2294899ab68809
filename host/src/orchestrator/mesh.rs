//! Connecting the worker processes of a `spawn` group to each other.
//!
//! timely's own set-up retries refused connections once a second and prints to standard
//! output, which a sink may be using. Here each process listens on its address, connects to
//! every lower-numbered process (retrying every few milliseconds until a deadline), accepts
//! every higher-numbered one, and hands the sockets to timely.

use std::any::Any;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use timely::communication::allocator::ProcessBuilder;
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::{AllocatorBuilder, Hooks};

/// How long a worker waits for its peers to come up.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);
const RETRY_EVERY: Duration = Duration::from_millis(5);

/// The communication layer of one process: timely's allocators for its worker threads and
/// the guard that keeps its network threads alive.
pub struct Communication {
    pub builders: Vec<AllocatorBuilder>,
    pub guard: Box<dyn Any + Send>,
}

impl Communication {
    /// Threads of one process talking through shared memory.
    pub fn process(threads: usize) -> Result<Self> {
        let (builders, guard) = timely::CommunicationConfig::Process(threads)
            .try_build()
            .map_err(|e| anyhow::anyhow!("cannot set up worker threads: {e}"))?;
        Ok(Self { builders, guard })
    }

    /// Process `process` of a group listening on `addresses`, `threads` threads each.
    pub fn cluster(addresses: &[String], process: usize, threads: usize) -> Result<Self> {
        let sockets = connect(addresses, process)?;
        let hooks = Hooks::default();
        let allocators = ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), None);
        let (builders, guard) =
            initialize_networking_from_sockets(allocators, sockets, process, threads, hooks)
                .context("cannot start the network threads")?;
        Ok(Self {
            builders: builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
            guard: Box::new(guard),
        })
    }
}

/// One socket per other process, in process order, `None` at `me`.
fn connect(addresses: &[String], me: usize) -> Result<Vec<Option<TcpStream>>> {
    let deadline = Instant::now() + CONNECT_DEADLINE;
    let listener = TcpListener::bind(&addresses[me])
        .with_context(|| format!("cannot listen on {}", addresses[me]))?;
    let mut sockets: Vec<Option<TcpStream>> = (0..addresses.len()).map(|_| None).collect();
    for (peer, address) in addresses.iter().enumerate().take(me) {
        let mut stream = loop {
            match TcpStream::connect(address) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => std::thread::sleep(RETRY_EVERY),
                Err(error) => {
                    bail!("worker process {peer} at {address} did not come up: {error}")
                }
            }
        };
        stream.set_nodelay(true)?;
        stream.write_all(&(me as u64).to_le_bytes())?;
        sockets[peer] = Some(stream);
    }
    listener.set_nonblocking(true)?;
    let mut missing = addresses.len() - me - 1;
    while missing > 0 {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false)?;
                stream.set_nodelay(true)?;
                let mut index = [0u8; 8];
                stream.read_exact(&mut index)?;
                let index = u64::from_le_bytes(index) as usize;
                if index <= me || index >= addresses.len() || sockets[index].is_some() {
                    bail!("unexpected connection claiming to be worker process {index}");
                }
                sockets[index] = Some(stream);
                missing -= 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(RETRY_EVERY);
            }
            Err(e) => bail!("{missing} worker processes did not connect: {e}"),
        }
    }
    Ok(sockets)
}
