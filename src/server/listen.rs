//! The xDS listening socket.

/// Connections the kernel queues for the xDS listener before Sextant
/// accepts them (`listen(2)`'s backlog; Linux caps it at
/// `net.core.somaxconn`, 4,096 by default). Tokio's `TcpListener::bind`
/// asks for 1,024: a thousand proxies connecting at once (a restart of the
/// control plane) overflowed it (`ListenOverflows` in `/proc/net/netstat`)
/// and the dropped SYNs cost each of them a retransmission timeout (1 s,
/// then doubling).
pub const XDS_LISTEN_BACKLOG: u32 = 8_192;

/// Binds the xDS listener on `address` with [`XDS_LISTEN_BACKLOG`].
///
/// # Errors
/// The socket cannot be created, bound (address in use, no permission) or
/// put in the listening state.
pub fn bind_xds(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server rebinds at once.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(XDS_LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1,500 proxies connecting at once all complete their handshake
    /// before any is accepted. With Tokio's default backlog (1,024) the
    /// kernel drops the SYNs beyond it, and those connects take at least
    /// the first SYN retransmission (1 s); here each must finish well
    /// within it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_proxies_connecting_at_once_are_all_queued() {
        const PROXIES: usize = 1_500;
        let listener = bind_xds("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let connects: Vec<_> = (0..PROXIES)
            .map(|_| {
                tokio::spawn(async move {
                    tokio::time::timeout(
                        std::time::Duration::from_millis(900),
                        tokio::net::TcpStream::connect(address),
                    )
                    .await
                })
            })
            .collect();
        let mut streams = Vec::new();
        let mut late = 0;
        for connect in connects {
            match connect.await.unwrap() {
                Ok(stream) => streams.push(stream.unwrap()),
                Err(_) => late += 1,
            }
        }
        assert_eq!(
            late, 0,
            "{late} of {PROXIES} connects waited for a SYN retransmission: the accept queue overflowed"
        );
        drop(listener);
    }
}
