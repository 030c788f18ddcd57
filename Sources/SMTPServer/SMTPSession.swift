import SMTPCore
import Foundation

/// A recipient accepted by RCPT, with its RFC 3461 parameters.
public struct AcceptedRecipient: Equatable, Sendable {
    public var mailbox: Mailbox
    public var notify: [String]?
    public var orcpt: String?
}

/// A finished DATA section, ready to be committed to the spool.
public struct SMTPTransaction: Equatable, Sendable {
    public var sender: ReversePath
    public var recipients: [AcceptedRecipient]
    public var body: String?
    public var smtputf8: Bool
    public var dsnRet: String?
    public var dsnEnvid: String?
    /// The message as received, dot-unstuffed, CRLF line endings.
    public var message: [UInt8]
    public var helo: String?
    public var authenticatedUser: String?
    public var tls: Bool
    public var esmtp: Bool
}

/// What the I/O layer must do next. Replies are written in order.
public enum SMTPSessionAction: Equatable, Sendable {
    case reply(SMTPReply)
    /// Write the reply, then close the connection.
    case replyAndClose(SMTPReply)
    /// The `220` went out: put TLS in front of the session now.
    case startTLS
    /// Commit this transaction, then call `commitSucceeded` or `commitFailed`.
    case commit(SMTPTransaction)
    /// Check these credentials (off the event loop), then call `authenticationFinished`.
    case verifyCredentials(username: String, password: String)
    /// Plaintext pipelined after STARTTLS was thrown away (this many octets): log it.
    case discardedPlaintextAfterSTARTTLS(Int)
}

/// The server side of one SMTP session, without I/O.
///
/// Bytes go in through `receive(_:)`, results of asynchronous work come back through
/// `commitSucceeded`, `commitFailed`, `authenticationFinished` and `tlsEstablished`.
/// While such work is pending (`isWaiting`), input stays buffered and unprocessed, so
/// the I/O layer stops reading from the socket (back-pressure) and replies keep the
/// order of the commands (RFC 2920).
public struct SMTPSession: Sendable {
    enum AuthStep: Equatable, Sendable {
        case plainResponse
        case loginUsername
        case loginPassword(username: String)
    }

    struct Transaction: Sendable {
        var sender: ReversePath
        var recipients: [AcceptedRecipient] = []
        var rejectedRecipients = 0
        /// `452 4.5.3` replies for recipients past `maxRecipients` in this transaction.
        var overshoot = 0
        var body: String?
        var smtputf8 = false
        var dsnRet: String?
        var dsnEnvid: String?
    }

    enum State: Sendable {
        /// Connected, greeting not sent yet: anything the client says now is a protocol error.
        case awaitingGreeting
        /// Between transactions (`helo` nil before HELO/EHLO).
        case ready
        case transaction(Transaction)
        case data(Transaction, DataReader)
        case awaitingCommit
        case authenticating(AuthStep)
        case awaitingAuthentication
        case awaitingTLS
        case closed
    }

    public let configuration: SMTPSessionConfiguration
    /// The relay policy's verdict on the client address (a `relay` listener's trusted networks).
    public let clientTrusted: Bool
    public private(set) var helo: String?
    public private(set) var esmtp = false
    public private(set) var isTLS: Bool
    public private(set) var authenticatedUser: String?
    public private(set) var errorCount = 0
    /// Set by the I/O layer before input is processed: what RCPT answers an
    /// authenticated client whose tenant is known to be over its quota (`452 4.7.1`).
    public var recipientRefusal: SMTPReply?
    /// Set by `shutdownRequested()`: the session ends after the current transaction.
    public private(set) var closing = false
    var state: State = .awaitingGreeting
    var input = SMTPInputBuffer()

    public init(configuration: SMTPSessionConfiguration, clientTrusted: Bool, isTLS: Bool = false) {
        self.configuration = configuration
        self.clientTrusted = clientTrusted
        self.isTLS = isTLS
    }

    /// True while an asynchronous result is awaited: do not read from the socket.
    public var isWaiting: Bool {
        switch state {
        case .awaitingCommit, .awaitingAuthentication, .awaitingTLS: return true
        case .awaitingGreeting, .ready, .transaction, .data, .authenticating, .closed: return false
        }
    }

    public var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// True while the session is inside a mail transaction (MAIL given, not finished).
    public var inTransaction: Bool {
        switch state {
        case .transaction, .data, .awaitingCommit: return true
        case .awaitingGreeting, .ready, .authenticating, .awaitingAuthentication, .awaitingTLS, .closed: return false
        }
    }

    /// True while the client is sending DATA (the I/O layer uses the data time-out).
    public var receivingData: Bool {
        if case .data = state { return true }
        return false
    }

    // MARK: - Events

    /// Sends the greeting, unless the client already spoke (pre-greeting traffic).
    public mutating func greet() -> [SMTPSessionAction] {
        guard case .awaitingGreeting = state else { return [] }
        if !input.isEmpty {
            state = .closed
            return [.replyAndClose(SMTPReply(554, EnhancedStatusCode(5, 5, 1),
                                             "Protocol error: command sent before the greeting"))]
        }
        state = .ready
        return [.reply(SMTPReply(220, nil, "\(configuration.hostname) ESMTP Herald"))]
    }

    public mutating func receive(_ bytes: some Sequence<UInt8>) -> [SMTPSessionAction] {
        switch state {
        case .closed:
            return []
        case .awaitingGreeting:
            input.append(bytes)
            state = .closed
            return [.replyAndClose(SMTPReply(554, EnhancedStatusCode(5, 5, 1),
                                             "Protocol error: command sent before the greeting"))]
        case .awaitingTLS:
            // Only reachable if plaintext arrives while the handshake is pending and
            // something bypassed the TLS handler: never read it as a command.
            state = .closed
            return [.replyAndClose(SMTPReply(421, EnhancedStatusCode(4, 7, 0),
                                             "Plaintext received during the TLS handshake"))]
        case .ready, .transaction, .data, .awaitingCommit, .authenticating, .awaitingAuthentication:
            input.append(bytes)
            return process()
        }
    }

    public mutating func commitSucceeded(queueID: String) -> [SMTPSessionAction] {
        guard case .awaitingCommit = state else { preconditionFailure("commit result without a pending commit") }
        state = .ready
        var actions: [SMTPSessionAction] = [.reply(SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok: queued as \(queueID)"))]
        actions += afterTransaction()
        return actions
    }

    public mutating func commitFailed() -> [SMTPSessionAction] {
        guard case .awaitingCommit = state else { preconditionFailure("commit result without a pending commit") }
        state = .ready
        var actions = [error(SMTPReply(452, EnhancedStatusCode(4, 3, 1),
                                       "Insufficient system storage; try again later"))]
        actions += afterTransaction()
        return actions
    }

    /// The sink refused the message with `reply` (e.g. `452 4.7.1`, the tenant's quota):
    /// nothing was spooled, the session is ready for another transaction.
    public mutating func commitRefused(_ reply: SMTPReply) -> [SMTPSessionAction] {
        guard case .awaitingCommit = state else { preconditionFailure("commit result without a pending commit") }
        state = .ready
        return [error(reply)] + afterTransaction()
    }

    public mutating func authenticationFinished(user: String?) -> [SMTPSessionAction] {
        guard case .awaitingAuthentication = state else { preconditionFailure("auth result without a pending check") }
        state = .ready
        var actions: [SMTPSessionAction]
        if let user {
            authenticatedUser = user
            actions = [.reply(SMTPReply(235, EnhancedStatusCode(2, 7, 0), "Authentication successful"))]
        } else {
            actions = [error(SMTPReply(535, EnhancedStatusCode(5, 7, 8), "Authentication credentials invalid"))]
        }
        return actions + process()
    }

    /// The TLS handshake finished: the session starts over (RFC 3207 §4.2).
    public mutating func tlsEstablished() -> [SMTPSessionAction] {
        guard case .awaitingTLS = state else { return [] }
        isTLS = true
        // RFC 3207 §4.2: forget everything learnt from the client before TLS, an
        // identity from a plaintext AUTH included.
        helo = nil
        esmtp = false
        authenticatedUser = nil
        state = .ready
        return process()
    }

    /// The time-out for the current phase expired.
    public mutating func timedOut() -> [SMTPSessionAction] {
        guard !isClosed else { return [] }
        state = .closed
        return [.replyAndClose(SMTPReply(421, EnhancedStatusCode(4, 4, 2),
                                         "\(configuration.hostname) Error: timeout exceeded"))]
    }

    /// The server is stopping: close now if idle, else after the transaction in progress.
    public mutating func shutdownRequested() -> [SMTPSessionAction] {
        closing = true
        switch state {
        case .data, .awaitingCommit:
            return []
        case .awaitingGreeting, .ready, .transaction, .authenticating, .awaitingAuthentication, .awaitingTLS:
            state = .closed
            return [.replyAndClose(shutdownReply)]
        case .closed:
            return []
        }
    }

    var shutdownReply: SMTPReply {
        SMTPReply(421, EnhancedStatusCode(4, 3, 2), "\(configuration.hostname) Service shutting down")
    }

    private mutating func afterTransaction() -> [SMTPSessionAction] {
        if closing {
            state = .closed
            return [.replyAndClose(shutdownReply)]
        }
        return process()
    }

    // MARK: - Input processing

    mutating func process() -> [SMTPSessionAction] {
        var actions: [SMTPSessionAction] = []
        loop: while true {
            switch state {
            case .closed, .awaitingGreeting, .awaitingCommit, .awaitingAuthentication, .awaitingTLS:
                break loop
            case .data(let tx, var reader):
                state = .closed // placeholder while the reader is mutated in place
                let (consumed, finished) = reader.consume(input.readable)
                input.consume(consumed)
                guard finished else {
                    state = .data(tx, reader)
                    break loop
                }
                actions += endOfData(tx, reader)
            case .authenticating(let step):
                switch input.nextLine(maxLength: 12288) {
                case .needMoreData:
                    break loop
                case .tooLong, .bareLineEnding:
                    state = .ready
                    actions.append(error(SMTPReply(501, EnhancedStatusCode(5, 5, 2), "Malformed authentication response")))
                case .line(let line):
                    actions += authResponse(step, line)
                }
            case .ready, .transaction:
                switch input.nextLine(maxLength: configuration.maxCommandLineLength) {
                case .needMoreData:
                    break loop
                case .tooLong:
                    actions.append(error(SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Line too long")))
                case .bareLineEnding:
                    actions.append(error(SMTPReply(500, EnhancedStatusCode(5, 5, 2),
                                                   "Bare CR or LF in command; lines must end with CRLF")))
                case .line(let line):
                    switch SMTPCommandParser.parse(line) {
                    case .success(let command):
                        actions += handle(command)
                    case .failure(let failure):
                        actions.append(error(failure.reply))
                    }
                }
            }
            if let last = actions.last, case .replyAndClose = last { break loop }
        }
        return actions
    }

    /// Counts an error reply; past the limit the session ends.
    mutating func error(_ reply: SMTPReply) -> SMTPSessionAction {
        errorCount += 1
        if errorCount > configuration.maxErrors {
            state = .closed
            return .replyAndClose(SMTPReply(421, EnhancedStatusCode(4, 7, 0),
                                            "\(configuration.hostname) Error: too many errors"))
        }
        return .reply(reply)
    }

    var relayPermitted: Bool {
        authenticatedUser != nil || (configuration.role == .relay && clientTrusted)
    }

    var authOffered: Bool {
        configuration.authAvailable && (isTLS || configuration.allowPlaintextAuth)
    }

    var startTLSOffered: Bool {
        configuration.tls == .starttls && configuration.tlsAvailable && !isTLS
    }

    mutating func handle(_ command: SMTPCommand) -> [SMTPSessionAction] {
        let ok = SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok")
        switch command {
        case .helo(let name):
            helo = name
            esmtp = false
            state = .ready
            return [.reply(SMTPReply(250, nil, configuration.hostname))]
        case .ehlo(let name):
            helo = name
            esmtp = true
            state = .ready
            var lines = [configuration.hostname, "PIPELINING", "SIZE \(configuration.maxMessageSize)", "8BITMIME",
                         "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN"]
            if startTLSOffered { lines.append("STARTTLS") }
            if authOffered { lines.append("AUTH PLAIN LOGIN") }
            return [.reply(SMTPReply(250, nil, lines))]
        case .mail(let path, let params):
            return mail(path, params)
        case .rcpt(let path, let params):
            return rcpt(path, params)
        case .data:
            guard case .transaction(let tx) = state else {
                return [error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: need MAIL command"))]
            }
            guard !tx.recipients.isEmpty else {
                if tx.rejectedRecipients > 0 {
                    return [error(SMTPReply(554, EnhancedStatusCode(5, 5, 1), "Error: no valid recipients"))]
                }
                return [error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: need RCPT command"))]
            }
            state = .data(tx, DataReader(maxMessageSize: configuration.maxMessageSize,
                                         maxLineLength: configuration.maxTextLineLength))
            return [.reply(SMTPReply(354, nil, "End data with <CR><LF>.<CR><LF>"))]
        case .bdat:
            return [error(SMTPReply(502, EnhancedStatusCode(5, 5, 1), "BDAT is not supported; use DATA"))]
        case .rset:
            state = .ready
            return [.reply(ok)]
        case .noop:
            return [.reply(ok)]
        case .quit:
            state = .closed
            return [.replyAndClose(SMTPReply(221, EnhancedStatusCode(2, 0, 0), "Bye"))]
        case .vrfy:
            return [.reply(SMTPReply(252, EnhancedStatusCode(2, 5, 0),
                                     "Cannot VRFY user, but will accept message and attempt delivery"))]
        case .expn:
            return [error(SMTPReply(502, EnhancedStatusCode(5, 5, 1), "EXPN is not supported"))]
        case .help:
            return [.reply(SMTPReply(214, EnhancedStatusCode(2, 0, 0),
                                     "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH"))]
        case .starttls:
            return startTLS()
        case .auth(let mechanism, let initial):
            return auth(mechanism, initial)
        }
    }

    mutating func mail(_ path: ReversePath, _ params: [ESMTPParameter]) -> [SMTPSessionAction] {
        guard helo != nil else {
            return [error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: send HELO/EHLO first"))]
        }
        if case .transaction = state {
            return [error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: nested MAIL command"))]
        }
        var tx = Transaction(sender: path)
        var seen = Set<String>()
        for param in params {
            guard seen.insert(param.keyword).inserted else {
                return [error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Duplicate \(param.keyword) parameter"))]
            }
            switch param.keyword {
            case "SIZE":
                // RFC 1870: size-value = 1*20DIGIT (no sign, no space).
                guard let v = param.value, (1...20).contains(v.utf8.count),
                      v.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
                else {
                    return [error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad SIZE parameter"))]
                }
                if (Int(v) ?? Int.max) > configuration.maxMessageSize {
                    return [error(SMTPReply(552, EnhancedStatusCode(5, 3, 4), "Message size exceeds fixed limit"))]
                }
            case "BODY":
                guard let v = param.value?.uppercased(), v == "7BIT" || v == "8BITMIME" else {
                    return [error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad BODY parameter"))]
                }
                tx.body = v
            case "SMTPUTF8":
                guard param.value == nil, esmtp else {
                    return [error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad SMTPUTF8 parameter"))]
                }
                tx.smtputf8 = true
            case "RET":
                guard let v = param.value?.uppercased(), v == "FULL" || v == "HDRS", tx.dsnRet == nil else {
                    return [error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad RET parameter"))]
                }
                tx.dsnRet = v
            case "ENVID":
                guard let v = param.value, v.count <= 100, let decoded = decodeXtext(v), tx.dsnEnvid == nil else {
                    return [error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad ENVID parameter"))]
                }
                tx.dsnEnvid = decoded
            case "AUTH":
                // RFC 4954 §5: accepted; Herald records its own AUTH identity instead.
                break
            default:
                return [error(SMTPReply(555, EnhancedStatusCode(5, 5, 4), "Unsupported parameter \(param.keyword)"))]
            }
        }
        if case .mailbox(let m) = path, m.needsSMTPUTF8, !tx.smtputf8 {
            return [error(SMTPReply(553, EnhancedStatusCode(5, 6, 7), "Non-ASCII address requires SMTPUTF8"))]
        }
        state = .transaction(tx)
        return [.reply(SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok"))]
    }

    mutating func rcpt(_ path: ForwardPath, _ params: [ESMTPParameter]) -> [SMTPSessionAction] {
        guard case .transaction(var tx) = state else {
            return [error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: need MAIL command"))]
        }
        func reject(_ reply: SMTPReply) -> [SMTPSessionAction] {
            tx.rejectedRecipients += 1
            state = .transaction(tx)
            return [error(reply)]
        }
        let local: Bool
        if case .mailbox(let m) = path, !configuration.localDomains.isEmpty {
            local = configuration.localDomains.contains(m.domain.lowercased())
        } else {
            local = false
        }
        guard relayPermitted || local else {
            let why = configuration.role == .submission || !configuration.authAvailable
                ? "Relay access denied" : "Relay access denied; authenticate first"
            return reject(SMTPReply(554, EnhancedStatusCode(5, 7, 1), why))
        }
        guard case .mailbox(let mailbox) = path else {
            return reject(SMTPReply(550, EnhancedStatusCode(5, 1, 1), "No local mailboxes here; Herald only relays"))
        }
        if !local, authenticatedUser != nil, let refusal = recipientRefusal {
            return reject(refusal)
        }
        if mailbox.needsSMTPUTF8 && !tx.smtputf8 {
            return reject(SMTPReply(553, EnhancedStatusCode(5, 6, 7), "Non-ASCII address requires SMTPUTF8"))
        }
        guard tx.recipients.count < configuration.maxRecipients else {
            // RFC 5321 §4.5.3.1.8: the client sends the rest in another transaction. A
            // pipelining client learns of the limit only after sending them all, so
            // these replies count as errors only past the overshoot allowance (Postfix's
            // smtpd_recipient_overshoot_limit), and the accepted ones keep their DATA.
            tx.overshoot += 1
            let reply = SMTPReply(452, EnhancedStatusCode(4, 5, 3), "Too many recipients")
            if tx.overshoot <= configuration.recipientOvershootLimit {
                state = .transaction(tx)
                return [.reply(reply)]
            }
            return reject(reply)
        }
        var recipient = AcceptedRecipient(mailbox: mailbox, notify: nil, orcpt: nil)
        for param in params {
            switch param.keyword {
            case "NOTIFY":
                guard let v = param.value?.uppercased(), recipient.notify == nil else {
                    return reject(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad NOTIFY parameter"))
                }
                let values = v.split(separator: ",").map(String.init)
                let valid = values == ["NEVER"]
                    || (!values.isEmpty && Set(values).count == values.count
                        && values.allSatisfy { ["SUCCESS", "FAILURE", "DELAY"].contains($0) })
                guard valid else {
                    return reject(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad NOTIFY parameter"))
                }
                recipient.notify = values
            case "ORCPT":
                guard let v = param.value, v.count <= 500, let semi = v.firstIndex(of: ";"),
                      let decoded = decodeXtext(String(v[v.index(after: semi)...])), recipient.orcpt == nil
                else {
                    return reject(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad ORCPT parameter"))
                }
                recipient.orcpt = "\(v[..<semi]);\(decoded)"
            default:
                return reject(SMTPReply(555, EnhancedStatusCode(5, 5, 4), "Unsupported parameter \(param.keyword)"))
            }
        }
        tx.recipients.append(recipient)
        state = .transaction(tx)
        return [.reply(SMTPReply(250, EnhancedStatusCode(2, 1, 5), "Ok"))]
    }

    mutating func endOfData(_ tx: Transaction, _ reader: DataReader) -> [SMTPSessionAction] {
        if let violation = reader.violation {
            state = .ready
            var actions = [error(DataReader.reply(for: violation))]
            // A shutdown waited for this transaction to finish: it has, so close now.
            if closing && !isClosed {
                state = .closed
                actions.append(.replyAndClose(shutdownReply))
            }
            return actions
        }
        state = .awaitingCommit
        return [.commit(SMTPTransaction(
            sender: tx.sender, recipients: tx.recipients, body: tx.body, smtputf8: tx.smtputf8,
            dsnRet: tx.dsnRet, dsnEnvid: tx.dsnEnvid, message: reader.message, helo: helo,
            authenticatedUser: authenticatedUser, tls: isTLS, esmtp: esmtp))]
    }

    mutating func startTLS() -> [SMTPSessionAction] {
        if isTLS {
            return [error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: TLS already active"))]
        }
        guard configuration.tls == .starttls else {
            return [error(SMTPReply(502, EnhancedStatusCode(5, 5, 1), "STARTTLS is not offered here"))]
        }
        guard configuration.tlsAvailable else {
            return [error(SMTPReply(454, EnhancedStatusCode(4, 7, 0), "TLS not available due to local problem"))]
        }
        guard helo != nil, !inTransaction else {
            return [error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: send EHLO first, outside a transaction"))]
        }
        state = .awaitingTLS
        var actions: [SMTPSessionAction] = [.reply(SMTPReply(220, EnhancedStatusCode(2, 0, 0), "Ready to start TLS")), .startTLS]
        let leftover = input.discardAll()
        if leftover > 0 { actions.append(.discardedPlaintextAfterSTARTTLS(leftover)) }
        return actions
    }
}
