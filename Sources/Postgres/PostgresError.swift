import CLibPQ

/// An error from PostgreSQL or from libpq, with what the server said about it.
///
/// `sqlState` is the five-character SQLSTATE code of the server's error (`23505`
/// unique violation, `40001` serialization failure, `57P01` backend terminated, …),
/// nil when the failure happened on the client side (no server, a broken connection,
/// a protocol problem). `message` is the server's primary message or libpq's text.
/// Parameters are never part of the description: they may be personal data.
public struct PostgresError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Could not connect, or the connection broke (server gone, backend terminated).
        case connection
        /// The server refused the statement (syntax, constraint, permission, …).
        case server
        /// COPY or a stream was aborted by the client side (the producer threw, the consumer left).
        case aborted
        /// The client was closed before the work could run.
        case closed
    }

    public var kind: Kind
    public var sqlState: String?
    public var message: String
    public var detail: String?
    public var hint: String?
    /// The constraint a violation names (`subscribers_tenant_id_email_key`), if any.
    public var constraint: String?

    public init(_ kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil,
                hint: String? = nil, constraint: String? = nil) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
    }

    public var description: String {
        var text = "PostgreSQL "
        switch kind {
        case .connection: text += "connection error"
        case .server: text += "error"
        case .aborted: text += "operation aborted"
        case .closed: text += "client closed"
        }
        if let sqlState { text += " \(sqlState)" }
        text += ": \(message)"
        if let detail { text += " (\(detail))" }
        return text
    }

    /// The server cannot be reached or went away: no connection, a broken one, or a
    /// backend stopped by the server (SQLSTATE class 08, connection exception, or 57,
    /// operator intervention: shutdown, crash recovery, "cannot connect now").
    public var isUnavailable: Bool {
        kind == .connection || kind == .closed
            || sqlState.map { $0.hasPrefix("08") || $0.hasPrefix("57") } == true
    }

    /// 23505.
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// 23503.
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    /// 40001 or 40P01: the transaction may simply be run again.
    public var isRetryableTransactionFailure: Bool { sqlState == "40001" || sqlState == "40P01" }

    /// The error a failed `PGresult` carries (status FATAL_ERROR / BAD_RESPONSE / NONFATAL).
    /// When the connection is broken afterwards, the kind is `.connection`.
    static func from(result: OpaquePointer?, connection: OpaquePointer?) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let result, let pointer = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            let text = String(cString: pointer)
            return text.isEmpty ? nil : text
        }
        let broken = connection.map { PQstatus($0) != CONNECTION_OK } ?? true
        let sqlState = field("C")
        var message = field("M")
        if message == nil, let result, let pointer = PQresultErrorMessage(result) {
            message = trimmed(String(cString: pointer))
        }
        if message == nil || message!.isEmpty { message = connection.map(connectionMessage) ?? "unknown error" }
        // Class 08 (connection exception) and 57P0x (operator intervention: terminated,
        // shutting down) mean the session is gone, whatever libpq's status says yet.
        let connectionGone = broken || sqlState?.hasPrefix("08") == true || sqlState?.hasPrefix("57P0") == true
        return PostgresError(connectionGone ? .connection : .server, sqlState: sqlState, message: message!,
                             detail: field("D"), hint: field("H"), constraint: field("n"))
    }

    /// `PQerrorMessage` of a connection, trimmed.
    static func connectionMessage(_ connection: OpaquePointer) -> String {
        guard let pointer = PQerrorMessage(connection) else { return "unknown libpq error" }
        let text = trimmed(String(cString: pointer))
        return text.isEmpty ? "unknown libpq error" : text
    }
}

extension PostgresError {
    /// libpq's messages end with a newline.
    static func trimmed(_ text: String) -> String {
        var s = Substring(text)
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return String(s)
    }
}
