import NIOCore

/// How outbound TLS is used for a destination.
public enum OutboundTLSPolicy: String, Sendable, Codable, Hashable {
    /// Use STARTTLS when offered; after a failed handshake retry once in plain text.
    case opportunistic
    /// Defer rather than send in clear.
    case required
    /// Never.
    case off
    /// STARTTLS required, and the certificate checked: a chain to a trusted root (the
    /// system's, or the route's CA file), valid now, for the host's name (or, for an IP
    /// address, an IP address entry). Anything less defers; nothing is sent in clear.
    case verify
}

/// Keeps idle outbound connections for reuse, keyed by everything that makes two
/// connections interchangeable: address, port, TLS policy, credentials.
public actor SMTPConnectionPool {
    struct Key: Hashable, Sendable {
        var address: String
        var port: Int
        var tls: OutboundTLSPolicy
        var user: String?
        var caFile: String? = nil
    }

    private var idle: [Key: [SMTPClientConnection]] = [:]
    /// Connections opened for attempts, and attempts that took a pooled one instead.
    private var opened = 0
    private var reused = 0
    let maxMessages: Int
    let idleTimeout: TimeAmount

    /// - Parameters:
    ///   - maxMessages: transactions per connection before it is closed (QUIT).
    ///   - idleTimeout: how long an unused connection is kept.
    public init(maxMessages: Int, idleTimeout: TimeAmount) {
        self.maxMessages = maxMessages
        self.idleTimeout = idleTimeout
    }

    func take(_ key: Key) -> SMTPClientConnection? {
        while var list = idle[key], let conn = list.popLast() {
            idle[key] = list.isEmpty ? nil : list
            if conn.isActive && conn.messagesSent < maxMessages && NIODeadline.now() - conn.lastUsed < idleTimeout {
                reused += 1
                return conn
            }
            conn.close()
        }
        return nil
    }

    func put(_ conn: SMTPClientConnection, _ key: Key) async {
        guard conn.isActive, conn.messagesSent < maxMessages else {
            await conn.quit()
            return
        }
        idle[key, default: []].append(conn)
    }

    /// Closes (with QUIT) what has been idle too long.
    public func sweep() async {
        let now = NIODeadline.now()
        var expired: [SMTPClientConnection] = []
        for (key, list) in idle {
            let keep = list.filter { $0.isActive && now - $0.lastUsed < idleTimeout }
            expired += list.filter { !($0.isActive && now - $0.lastUsed < idleTimeout) }
            idle[key] = keep.isEmpty ? nil : keep
        }
        for c in expired { await c.quit() }
    }

    public func closeAll() async {
        let all = idle.values.flatMap { $0 }
        idle = [:]
        for c in all { await c.quit() }
    }

    public var idleCount: Int { idle.values.reduce(0) { $0 + $1.count } }

    /// A new connection was opened (and greeted) for an attempt.
    func noteOpened() { opened += 1 }

    /// The pool's counters (for `/metrics`).
    public struct Statistics: Sendable, Equatable {
        /// Connections kept for reuse now.
        public var idle: Int
        /// Connections opened since start.
        public var opened: Int
        /// Attempts that ran on a pooled connection instead of a new one, since start.
        public var reused: Int

        public init(idle: Int, opened: Int, reused: Int) {
            self.idle = idle
            self.opened = opened
            self.reused = reused
        }
    }

    public var statistics: Statistics { Statistics(idle: idleCount, opened: opened, reused: reused) }
}
