#if canImport(Glibc)
import Glibc
#endif

/// Everything the spool can throw. A struct around a private enum, so that kinds can be
/// added without breaking callers; ask with the `is…` predicates.
///
/// Mapping (done by the callers, which own the protocols): ``isDiskFull`` is SMTP
/// `452 4.3.1` / HTTP 507; any other error while storing is `451 4.3.0` / HTTP 503.
/// ``description`` carries the detail (operation, path, errno text) for the log; it is
/// not meant for peers.
public struct SpoolError: Error, CustomStringConvertible, Sendable {
    private enum Kind: Sendable {
        case diskFull(operation: String, path: String, errno: Int32)
        case ioFailure(operation: String, path: String, errno: Int32)
        case notFound(QueueID)
        case corrupt(QueueID, reason: String)
        case alreadyExists(QueueID)
        case wrongUser(path: String, owner: String, user: String)
    }

    private let kind: Kind

    private init(_ kind: Kind) {
        self.kind = kind
    }

    // MARK: constructors

    /// ENOSPC or EDQUOT from `operation` on `path`.
    public static func diskFull(operation: String, path: String, errno: Int32 = ENOSPC) -> SpoolError {
        SpoolError(.diskFull(operation: operation, path: path, errno: errno))
    }

    /// Any other system call failure.
    public static func ioFailure(operation: String, path: String, errno: Int32) -> SpoolError {
        SpoolError(.ioFailure(operation: operation, path: path, errno: errno))
    }

    /// The message is not (or no longer) in the queue asked for.
    public static func notFound(_ id: QueueID) -> SpoolError {
        SpoolError(.notFound(id))
    }

    /// The message's files are unreadable or do not match their envelope.
    public static func corrupt(_ id: QueueID, reason: String) -> SpoolError {
        SpoolError(.corrupt(id, reason: reason))
    }

    /// `store` was given an id that is already queued (a bug in the caller).
    public static func alreadyExists(_ id: QueueID) -> SpoolError {
        SpoolError(.alreadyExists(id))
    }

    /// The spool belongs to another user than the one running this process (not root).
    public static func wrongUser(path: String, owner: String, user: String) -> SpoolError {
        SpoolError(.wrongUser(path: path, owner: owner, user: user))
    }

    /// The right error for a failed system call: disk-full for ENOSPC/EDQUOT, else I/O failure.
    static func system(_ operation: String, _ path: String, _ code: Int32) -> SpoolError {
        if code == ENOSPC || code == EDQUOT {
            return .diskFull(operation: operation, path: path, errno: code)
        }
        return .ioFailure(operation: operation, path: path, errno: code)
    }

    // MARK: predicates

    public var isDiskFull: Bool {
        if case .diskFull = kind { return true }
        return false
    }

    public var isIOFailure: Bool {
        if case .ioFailure = kind { return true }
        return false
    }

    public var isNotFound: Bool {
        if case .notFound = kind { return true }
        return false
    }

    public var isCorrupt: Bool {
        if case .corrupt = kind { return true }
        return false
    }

    public var isAlreadyExists: Bool {
        if case .alreadyExists = kind { return true }
        return false
    }

    /// The queue id concerned, when the error is about one message.
    public var queueID: QueueID? {
        switch kind {
        case .notFound(let id), .corrupt(let id, _), .alreadyExists(let id): return id
        case .diskFull, .ioFailure, .wrongUser: return nil
        }
    }

    /// The system error number, for disk-full and I/O failures.
    public var errno: Int32? {
        switch kind {
        case .diskFull(_, _, let code), .ioFailure(_, _, let code): return code
        case .notFound, .corrupt, .alreadyExists, .wrongUser: return nil
        }
    }

    public var description: String {
        switch kind {
        case .diskFull(let operation, let path, let code):
            return "spool disk full: \(operation) \(path): \(SpoolError.text(code))"
        case .ioFailure(let operation, let path, let code):
            return "spool I/O failure: \(operation) \(path): \(SpoolError.text(code))"
        case .notFound(let id):
            return "queue id \(id) not found"
        case .corrupt(let id, let reason):
            return "queue id \(id) is corrupt: \(reason)"
        case .alreadyExists(let id):
            return "queue id \(id) is already in the spool"
        case .wrongUser(let path, let owner, let user):
            return "the spool \(path) belongs to \(owner); run herald as \(owner) or as root (this is \(user)); "
                + "nothing was changed"
        }
    }

    private static func text(_ code: Int32) -> String {
        guard let cString = strerror(code) else { return "errno \(code)" }
        return String(cString: cString) + " (errno \(code))"
    }
}
