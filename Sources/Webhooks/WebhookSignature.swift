import Foundation
import Rendering

/// The `Herald-Signature` header: `t=<unix seconds>,v1=<hex>`, where the hex is the
/// HMAC-SHA256, under the endpoint's secret (its text, as UTF-8), of the timestamp, a
/// `.`, and the request body exactly as sent. The timestamp is the attempt's, so a
/// receiver can refuse old requests (replays); each retry is signed afresh.
///
/// A receiver verifies by computing the same HMAC over `<t>.<body>` and comparing it with
/// every `v1=` value in constant time (more than one may appear if Herald ever signs
/// with two secrets during a rotation).
public enum WebhookSignature {
    public static let header = "Herald-Signature"

    public static func sign(secret: [UInt8], timestamp: Int64, body: [UInt8]) -> String {
        let mac = Crypto.hmacSHA256(key: secret, Array("\(timestamp).".utf8), body)
        return "t=\(timestamp),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// True when `header` carries a `v1` signature of `body` under `secret` and a
    /// timestamp within `tolerance` seconds of `now`.
    public static func verify(header: String, secret: [UInt8], body: [UInt8], now: Date = Date(),
                              tolerance: TimeInterval = 300) -> Bool {
        var timestamp: Int64?
        var signatures: [String] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { continue }
            if pair[0] == "t" { timestamp = Int64(pair[1]) }
            if pair[0] == "v1" { signatures.append(pair[1]) }
        }
        guard let timestamp, abs(now.timeIntervalSince1970 - Double(timestamp)) <= tolerance else { return false }
        let expected = Array(sign(secret: secret, timestamp: timestamp, body: body).split(separator: "=").last!.utf8)
        return signatures.contains { Crypto.constantTimeEqual(Array($0.utf8), expected) }
    }
}

/// When a failed delivery is tried again: `minimum · 2^(attempt-1)`, at most `maximum`,
/// then scaled by a random factor in [0.5, 1.0] ("equal jitter": never less than half
/// the step, so retries still back off, but endpoints that failed together do not all
/// come back in the same second).
///
/// | attempt | step (10 s minimum, 1 h maximum) | wait      |
/// |---------|----------------------------------|-----------|
/// | 1       | 10 s                             | 5–10 s    |
/// | 2       | 20 s                             | 10–20 s   |
/// | 5       | 160 s                            | 80–160 s  |
/// | 9+      | 1 h (capped)                     | 30–60 min |
public struct WebhookBackoff: Sendable, Equatable {
    public var minimum: Duration
    public var maximum: Duration

    public init(minimum: Duration, maximum: Duration) {
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
    }

    /// The step before jitter, after `attempt` failed attempts (1 = the first failed).
    public func step(afterAttempt attempt: Int) -> Duration {
        let exponent = min(max(attempt, 1) - 1, 40)
        let seconds = Self.seconds(minimum) * pow(2, Double(exponent))
        return min(maximum, .milliseconds(Int64(min(seconds, 1e9) * 1000)))
    }

    /// The wait, with `jitter` in [0, 1] (0: half the step, 1: the whole step).
    public func delay(afterAttempt attempt: Int, jitter: Double = Double.random(in: 0...1)) -> Duration {
        let step = Self.seconds(self.step(afterAttempt: attempt))
        return .milliseconds(Int64(step * (0.5 + 0.5 * min(max(jitter, 0), 1)) * 1000))
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
