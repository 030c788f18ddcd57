import DNS
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Short, human text for the local failures that end up in a recipient's last reply,
/// the delivery log and a campaign's `failures`: `connection refused`, `timed out after
/// 30 s`, `TLS handshake failed: wrong version number`, never a dump of an internal
/// error value (`NIOConnectionError(host: …, connectionErrors: [...])`). The caller adds
/// what the error was about (`connect to 127.0.0.1:2600: `).
public enum ErrorText {
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let e as SMTPClientError:
            return e.description
        case let e as DNSError:
            return e.description
        case let e as NIOConnectionError:
            return describe(e)
        case let e as IOError:
            return errnoText(e.errnoCode)
        case let e as ChannelError:
            return describe(e)
        case let e as NIOSSLError:
            return describe(e)
        case is NIOSSLCloseTimedOutError:
            return "TLS shutdown timed out"
        default:
            return "\(error)"
        }
    }

    static func describe(_ error: NIOConnectionError) -> String {
        if let dns = error.dnsAError ?? error.dnsAAAAError { return "address lookup failed: " + describe(dns) }
        var texts: [String] = []
        for failure in error.connectionErrors {
            let text = describe(failure.error)
            if !texts.contains(text) { texts.append(text) }
        }
        return texts.isEmpty ? "no address to connect to" : texts.joined(separator: "; ")
    }

    static func describe(_ error: ChannelError) -> String {
        switch error {
        case .connectTimeout(let amount): return "timed out after \(seconds(amount))"
        case .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed, .eof: return "connection closed"
        case .connectPending: return "connection already in progress"
        default: return "\(error)"
        }
    }

    static func describe(_ error: NIOSSLError) -> String {
        switch error {
        case .handshakeFailed(let ssl): return "TLS handshake failed" + sslReason(ssl)
        case .shutdownFailed(let ssl): return "TLS shutdown failed" + sslReason(ssl)
        case .uncleanShutdown: return "connection closed during TLS"
        case .readInInvalidTLSState: return "data received in an invalid TLS state"
        default: return "TLS error: \(error)"
        }
    }

    /// `: wrong version number` from BoringSSL's `error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER`.
    static func sslReason(_ error: BoringSSLError) -> String {
        let text = "\(error)"
        var reasons: [String] = []
        for part in text.split(whereSeparator: { $0 == "]" || $0 == "," || $0 == " " || $0 == "[" }) {
            guard let range = part.range(of: "OPENSSL_internal:") else { continue }
            let reason = part[range.upperBound...].replacingOccurrences(of: "_", with: " ").lowercased()
            if !reason.isEmpty && !reasons.contains(reason) { reasons.append(reason) }
        }
        if !reasons.isEmpty { return ": " + reasons.joined(separator: ", ") }
        switch error {
        case .zeroReturn: return ": connection closed by the server"
        case .syscallError: return ": connection closed or reset"
        default: return ""
        }
    }

    /// A few words for a socket error number, as a postmaster knows them.
    public static func errnoText(_ code: Int32) -> String {
        switch code {
        case ECONNREFUSED: return "connection refused"
        case ETIMEDOUT: return "connection timed out"
        case ECONNRESET: return "connection reset by peer"
        case EPIPE: return "connection closed by peer"
        case EHOSTUNREACH: return "no route to host"
        case ENETUNREACH: return "network unreachable"
        case EADDRNOTAVAIL: return "cannot use the source address"
        case EADDRINUSE: return "source address in use"
        case ECONNABORTED: return "connection aborted"
        default: return String(cString: strerror(code)).lowercased()
        }
    }

    static func seconds(_ amount: TimeAmount) -> String {
        let s = Double(amount.nanoseconds) / 1e9
        return s == s.rounded() ? "\(Int(s)) s" : String(format: "%.1f s", s)
    }
}
