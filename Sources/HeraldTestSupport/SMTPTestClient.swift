import Foundation
import SMTPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One SMTP reply as read off the wire: `code` and the text of each line.
public struct WireReply: Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    /// Each line without the code and separator (`250-PIPELINING` → `PIPELINING`).
    public var lines: [String]
    /// The reply exactly as received (CRLFs included).
    public var raw: String

    /// The enhanced status code of the first line (`5.7.1`), if any.
    public var enhanced: String? {
        guard let first = lines.first?.split(separator: " ").first,
              first.split(separator: ".").count == 3, first.allSatisfy({ $0.isNumber || $0 == "." })
        else { return nil }
        return String(first)
    }

    /// `"554 5.7.1"`-style prefix for compact assertions.
    public var status: String { enhanced.map { "\(code) \($0)" } ?? "\(code)" }

    /// The id of `250 2.0.0 Ok: queued as <ID>`.
    public var queueID: String? {
        guard code == 250, let r = raw.range(of: "queued as ") else { return nil }
        let id = raw[r.upperBound...].prefix { !$0.isWhitespace }
        return id.isEmpty ? nil : String(id)
    }

    public var description: String { raw.trimmingCharacters(in: .whitespacesAndNewlines) }
}

public enum SMTPTestClientError: Error, CustomStringConvertible, Equatable {
    case connect(String)
    case timeout(String)
    case closed(String)
    case io(String)
    case malformed(String)

    public var description: String {
        switch self {
        case .connect(let s): return "connect: \(s)"
        case .timeout(let s): return "timed out \(s)"
        case .closed(let s): return "connection closed \(s)"
        case .io(let s): return "I/O error: \(s)"
        case .malformed(let s): return "malformed reply: \(s)"
        }
    }
}

/// A blocking, byte-exact SMTP client on a raw TCP socket, for tests that must control
/// every octet and every packet (pipelining, smuggling, drip-feeding, floods). Every read
/// has a time-out, so a test never hangs on a silent server. Not thread-safe: use one
/// client from one thread (or task) at a time.
public final class SMTPTestClient: @unchecked Sendable {
    public let port: Int
    private var fd: Int32
    private var buffer: [UInt8] = []
    /// Seconds a read waits for the server.
    public var timeout: Double
    /// Every byte received so far (for failure messages).
    public private(set) var transcript = ""

    /// Connects to `host:port`, optionally from `source` (any 127.x.y.z works on Linux loopback).
    public init(port: Int, host: String = "127.0.0.1", source: String? = nil, timeout: Double = 10) throws {
        self.port = port
        self.timeout = timeout
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SMTPTestClientError.connect("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if let source {
            var a = Self.address(source, port: 0)
            let rc = withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard rc == 0 else {
                let e = String(cString: strerror(errno))
                sysClose(fd)
                throw SMTPTestClientError.connect("bind \(source): \(e)")
            }
        }
        var addr = Self.address(host, port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let e = String(cString: strerror(errno))
            sysClose(fd)
            throw SMTPTestClientError.connect("\(host):\(port): \(e)")
        }
    }

    deinit {
        if fd >= 0 { sysClose(fd) }
    }

    private static func address(_ host: String, port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        _ = inet_pton(AF_INET, host, &a.sin_addr)
        return a
    }

    /// Polls 127.0.0.1:`port` until a server there greets with 220 (true), `timeout`
    /// passes or `alive` says the server's process is gone (false).
    public static func waitForGreeting(port: Int, timeout: Double,
                                       while alive: () -> Bool = { true }) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? SMTPTestClient(port: port, timeout: 1)).map({ client in
                defer { client.close() }
                return (try? client.readReply().code) == 220
            }) == true {
                return true
            }
            guard alive() else { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    public func close() {
        if fd >= 0 {
            sysClose(fd)
            fd = -1
        }
    }

    // MARK: Sending

    /// Writes every byte (one `send` call when the kernel takes it all: one packet on loopback).
    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { p in
                sysSend(fd, p.baseAddress, p.count, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw SMTPTestClientError.io("send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Sends `line` + CRLF.
    public func sendLine(_ line: String) throws { try send(line + "\r\n") }

    /// Sends `line` + CRLF and reads the reply.
    @discardableResult
    public func command(_ line: String) throws -> WireReply {
        try sendLine(line)
        return try readReply()
    }

    /// Sends `bytes` one at a time, pausing `interval` seconds between them.
    public func drip(_ bytes: [UInt8], interval: Double) throws {
        for b in bytes {
            try send([b])
            if interval > 0 { usleep(useconds_t(interval * 1_000_000)) }
        }
    }

    // MARK: Receiving

    /// Reads one more chunk into the buffer; false at EOF. Throws on time-out.
    private func fill(deadline: Date) throws -> Bool {
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { throw SMTPTestClientError.timeout("after \(timeout) s; received so far: \(transcript.debugDescription)") }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&p, 1, Int32(max(1, remaining * 1000)))
            if rc < 0 {
                if errno == EINTR { continue }
                throw SMTPTestClientError.io("poll: \(String(cString: strerror(errno)))")
            }
            if rc == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                if errno == ECONNRESET { return false }
                throw SMTPTestClientError.io("recv: \(String(cString: strerror(errno)))")
            }
            if n == 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            transcript += String(decoding: chunk[0..<n], as: UTF8.self)
            return true
        }
    }

    /// Reads one CRLF-terminated line (without the CRLF).
    public func readLine(timeout: Double? = nil) throws -> String {
        let deadline = Date().addingTimeInterval(timeout ?? self.timeout)
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                var line = Array(buffer[..<i])
                buffer.removeSubrange(...i)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill(deadline: deadline) else {
                throw SMTPTestClientError.closed("while waiting for a reply; received: \(transcript.debugDescription)")
            }
        }
    }

    /// Reads one complete (possibly multi-line) reply.
    public func readReply(timeout: Double? = nil) throws -> WireReply {
        var lines: [String] = []
        var raw = ""
        var code = 0
        while true {
            let line = try readLine(timeout: timeout)
            raw += line + "\r\n"
            let b = Array(line.utf8)
            guard b.count >= 3, let c = Int(String(decoding: b[0..<3], as: UTF8.self)) else {
                throw SMTPTestClientError.malformed(line)
            }
            code = c
            lines.append(b.count > 4 ? String(decoding: b[4...], as: UTF8.self) : "")
            if b.count == 3 || b[3] == UInt8(ascii: " ") { break }
        }
        return WireReply(code: code, lines: lines, raw: raw)
    }

    /// Everything that arrives within `wait` seconds (or until EOF): bytes, and whether the peer closed.
    public func drain(wait: Double) throws -> (bytes: [UInt8], closed: Bool) {
        let deadline = Date().addingTimeInterval(wait)
        var out = buffer
        buffer.removeAll()
        while true {
            do {
                guard try fill(deadline: deadline) else {
                    out += buffer
                    buffer.removeAll()
                    return (out, true)
                }
                out += buffer
                buffer.removeAll()
            } catch SMTPTestClientError.timeout {
                return (out, false)
            }
        }
    }

    /// True when the server closes the connection within `timeout` seconds (anything it
    /// sends first is returned too).
    public func waitForClose(timeout: Double = 5) throws -> (closed: Bool, received: String) {
        let (bytes, closed) = try drain(wait: timeout)
        return (closed, String(decoding: bytes, as: UTF8.self))
    }

    // MARK: Conversations

    /// Reads the greeting and says EHLO; returns the EHLO reply.
    @discardableResult
    public func greetAndEhlo(_ name: String = "client.test") throws -> WireReply {
        let greeting = try readReply()
        guard greeting.code == 220 else { throw SMTPTestClientError.malformed("greeting: \(greeting)") }
        return try command("EHLO \(name)")
    }

    /// MAIL, RCPT…, DATA, the dot-stuffed message and the final dot, one command at a time.
    /// Returns the reply to the end of data, or the first failing reply before it.
    public func sendMail(from: String, to: [String], message: [UInt8], mailParameters: String = "") throws -> WireReply {
        let mail = try command("MAIL FROM:<\(from)>" + (mailParameters.isEmpty ? "" : " " + mailParameters))
        guard mail.code == 250 else { return mail }
        var accepted = 0
        var lastFailure: WireReply?
        for r in to {
            let reply = try command("RCPT TO:<\(r)>")
            if reply.code == 250 { accepted += 1 } else { lastFailure = reply }
        }
        guard accepted > 0 else { return lastFailure! }
        let data = try command("DATA")
        guard data.code == 354 else { return data }
        try send(dotStuffed(message))
        return try readReply()
    }

    /// A whole session: greeting, EHLO, one message, QUIT. Returns the end-of-data reply.
    public static func submit(port: Int, from: String = "sender@client.test", to: [String] = ["rcpt@example.com"],
                              message: [UInt8], source: String? = nil, timeout: Double = 10) throws -> WireReply {
        let c = try SMTPTestClient(port: port, source: source, timeout: timeout)
        defer { c.close() }
        try c.greetAndEhlo()
        let reply = try c.sendMail(from: from, to: to, message: message)
        _ = try? c.command("QUIT")
        return reply
    }
}

/// Test messages and the check that Herald stored them byte for byte.
public enum TestMessage {
    /// A CRLF message with unique Message-ID and body lines (`withIDAndDate: false` leaves
    /// out Message-ID and Date, which Herald must then add).
    public static func make(tag: String, bodyLines: Int = 8, withIDAndDate: Bool = true,
                            from: String = "sender@client.test", to: String = "rcpt@example.com") -> [UInt8] {
        var t = "From: <\(from)>\r\nTo: <\(to)>\r\nSubject: test \(tag)\r\n"
        if withIDAndDate {
            t += "Message-ID: <\(tag)@client.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        }
        t += "X-Test-Tag: \(tag)\r\n\r\n"
        for i in 0..<bodyLines {
            t += i % 4 == 3 ? ".line \(i) starts with a dot (\(tag))\r\n" : "line \(i) of \(tag): \(UUID().uuidString)\r\n"
        }
        return Array(t.utf8)
    }

    /// `message` as it goes on the wire after DATA: dot-stuffed, ending with CRLF.CRLF.
    public static func wire(_ message: [UInt8]) -> [UInt8] { dotStuffed(message) }

    /// Problems (empty when none) with a stored `.msg` given the client's `original`:
    /// the stored bytes must be Herald's added lines followed by `original` unchanged;
    /// the added lines are a `Received:` field (naming `queueID` when given) and
    /// `Message-ID:` / `Date:` only when the original lacks them.
    public static func problems(stored: [UInt8], original: [UInt8], queueID: String? = nil) -> [String] {
        guard stored.count >= original.count, Array(stored.suffix(original.count)) == original else {
            return ["the stored message does not end with the client's bytes (stored \(stored.count) octets, "
                    + "sent \(original.count))"]
        }
        let added = String(decoding: stored.prefix(stored.count - original.count), as: UTF8.self)
        var problems: [String] = []
        guard added.hasSuffix("\r\n") else { return ["Herald's added lines do not end with CRLF: \(added.debugDescription)"] }
        var fields: [String] = []
        for line in added.dropLast(2).components(separatedBy: "\r\n") {
            if line.hasPrefix("\t") || line.hasPrefix(" "), !fields.isEmpty {
                fields[fields.count - 1] += "\r\n" + line
            } else {
                fields.append(line)
            }
        }
        let names = fields.map { $0.split(separator: ":", maxSplits: 1).first.map { String($0).lowercased() } ?? "" }
        if names.first != "received" { problems.append("the first added field is not Received: \(added.debugDescription)") }
        if let id = queueID, let received = fields.first, !received.contains(id) {
            problems.append("Received does not name the queue id \(id): \(received.debugDescription)")
        }
        let header = headerNames(original)
        let expected = ["received"] + (header.contains("message-id") ? [] : ["message-id"])
            + (header.contains("date") ? [] : ["date"])
        if names != expected { problems.append("added fields \(names), expected \(expected)") }
        return problems
    }

    /// Lower-cased field names of the header section of `message`.
    public static func headerNames(_ message: [UInt8]) -> Set<String> {
        let text = String(decoding: message, as: UTF8.self)
        let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
        var names = Set<String>()
        for line in head.components(separatedBy: "\r\n") where !line.hasPrefix(" ") && !line.hasPrefix("\t") {
            if let colon = line.firstIndex(of: ":") { names.insert(line[..<colon].lowercased()) }
        }
        return names
    }
}

private func sysClose(_ fd: Int32) { _ = close(fd) }
private func sysSend(_ fd: Int32, _ p: UnsafeRawPointer?, _ n: Int, _ flags: Int32) -> Int { send(fd, p, n, flags) }
