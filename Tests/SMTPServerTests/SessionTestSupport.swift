import Foundation
import SMTPCore
import SMTPServer
import Testing

/// A listener configuration for tests; every limit can be overridden.
func sessionConfig(
    role: ListenerRole = .relay,
    tls: ListenerTLSMode = .off,
    tlsAvailable: Bool = false,
    allowPlaintextAuth: Bool = false,
    authAvailable: Bool = false,
    maxMessageSize: Int = 10_000,
    maxRecipients: Int = 100,
    maxErrors: Int = 20
) -> SMTPSessionConfiguration {
    SMTPSessionConfiguration(
        hostname: "mx.herald.test", role: role, tls: tls, tlsAvailable: tlsAvailable,
        allowPlaintextAuth: allowPlaintextAuth, authAvailable: authAvailable,
        maxMessageSize: maxMessageSize, maxRecipients: maxRecipients,
        maxCommandLineLength: 512, maxTextLineLength: 1000, maxErrors: maxErrors)
}

/// A submission listener with STARTTLS and users.
func submissionConfig(maxErrors: Int = 20) -> SMTPSessionConfiguration {
    sessionConfig(role: .submission, tls: .starttls, tlsAvailable: true, authAvailable: true, maxErrors: maxErrors)
}

/// One action as a short, comparable line: `250 2.1.0 Ok`, `221 2.0.0 Bye [close]`, `[commit]`…
/// Multi-line replies keep every line (the wire form).
func render(_ action: SMTPSessionAction) -> String {
    switch action {
    case .reply(let r): return r.encoded
    case .replyAndClose(let r): return r.encoded + "[close]"
    case .startTLS: return "[startTLS]"
    case .commit: return "[commit]"
    case .verifyCredentials(let user, _): return "[verify \(user)]"
    case .discardedPlaintextAfterSTARTTLS(let n): return "[discarded \(n)]"
    }
}

/// The reply carried by an action, if any.
func reply(_ action: SMTPSessionAction) -> SMTPReply? {
    switch action {
    case .reply(let r), .replyAndClose(let r): return r
    case .startTLS, .commit, .verifyCredentials, .discardedPlaintextAfterSTARTTLS: return nil
    }
}

/// `code enhanced` of every reply, `+close` on a closing one, and markers for the others.
func codes(_ actions: [SMTPSessionAction]) -> [String] {
    actions.map { action in
        switch action {
        case .reply(let r): return r.enhanced.map { "\(r.code) \($0)" } ?? "\(r.code)"
        case .replyAndClose(let r): return (r.enhanced.map { "\(r.code) \($0)" } ?? "\(r.code)") + " close"
        case .startTLS: return "startTLS"
        case .commit: return "commit"
        case .verifyCredentials(let user, let password): return "verify \(user):\(password)"
        case .discardedPlaintextAfterSTARTTLS(let n): return "discarded \(n)"
        }
    }
}

func base64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

/// Drives an `SMTPSession` like the NIO handler does, answering asynchronous requests
/// (commits, credential checks) at once unless told otherwise.
struct SessionDriver {
    var session: SMTPSession
    /// Answer `.commit` with `commitSucceeded` at once.
    var autoCommit = true
    /// Answer `.verifyCredentials` at once from this table.
    var users: [String: String] = ["alice": "secret"]
    var autoVerify = true
    private(set) var commits: [SMTPTransaction] = []
    private var nextID = 1

    init(_ configuration: SMTPSessionConfiguration = sessionConfig(), trusted: Bool = true, isTLS: Bool = false,
         greet: Bool = true) {
        session = SMTPSession(configuration: configuration, clientTrusted: trusted, isTLS: isTLS)
        if greet {
            let greeting = session.greet()
            #expect(codes(greeting) == ["220"])
        }
    }

    /// Sends bytes; returns every action, including those that follow automatic answers.
    mutating func send(_ text: String) -> [SMTPSessionAction] {
        send(Array(text.utf8))
    }

    mutating func send(_ bytes: [UInt8]) -> [SMTPSessionAction] {
        complete(session.receive(bytes))
    }

    mutating func complete(_ actions: [SMTPSessionAction]) -> [SMTPSessionAction] {
        var out: [SMTPSessionAction] = []
        var pending = actions[...]
        while let action = pending.popFirst() {
            out.append(action)
            switch action {
            case .commit(let tx):
                commits.append(tx)
                if autoCommit {
                    let id = "Q\(nextID)"
                    nextID += 1
                    pending = (session.commitSucceeded(queueID: id) + Array(pending))[...]
                }
            case .verifyCredentials(let user, let password):
                if autoVerify {
                    let ok = users[user] == password
                    pending = (session.authenticationFinished(user: ok ? user : nil) + Array(pending))[...]
                }
            case .reply, .replyAndClose, .startTLS, .discardedPlaintextAfterSTARTTLS:
                break
            }
        }
        return out
    }

    /// Sends and returns `codes(…)`.
    mutating func codesFor(_ text: String) -> [String] {
        codes(send(text))
    }
}
