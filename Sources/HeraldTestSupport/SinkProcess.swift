import Foundation

/// The repository root, found from this file's location.
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// A scripted remote MX (`scripts/lib/sink.py`, aiosmtpd) on 127.0.0.1 and an
/// ephemeral port. Received messages land in `outDirectory` as `NNNNNNN.eml` plus
/// `index.jsonl`; the recipient's local part steers failures (see the script).
public final class SinkProcess: @unchecked Sendable {
    public let port: Int
    public let outDirectory: String
    let process: ChildProcess
    let workDirectory: String

    /// With `auth`, the sink offers AUTH after STARTTLS, takes any credentials and
    /// records them (``authLog``).
    public init(tls: (cert: String, key: String)? = nil, slow: Double = 2.0, auth: Bool = false) async throws {
        workDirectory = NSTemporaryDirectory() + "herald-sink-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        outDirectory = workDirectory + "/out"
        let stdout = workDirectory + "/stdout"
        var args = [repositoryRoot + "/scripts/lib/sink.py", "--out", outDirectory, "--slow", String(slow)]
        if let tls { args += ["--cert", tls.cert, "--key", tls.key] }
        if auth { args += ["--auth-log", workDirectory + "/auth.log"] }
        process = try ChildProcess(executable: "python3", arguments: args, stdoutPath: stdout,
                                   stderrPath: workDirectory + "/stderr")
        let deadline = Date().addingTimeInterval(20)
        var found: Int?
        while found == nil && Date() < deadline {
            if let text = try? String(contentsOfFile: stdout, encoding: .utf8),
               let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening 127.0.0.1:") }) {
                found = Int(line.split(separator: ":").last!)
            } else if !process.isRunning {
                break
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        guard let found else {
            let err = (try? String(contentsOfFile: workDirectory + "/stderr", encoding: .utf8)) ?? ""
            await process.killAndWait()
            throw SubprocessError("sink.py did not start: \(err)")
        }
        port = found
    }

    /// The credentials clients authenticated with ("user password" lines), when started with `auth`.
    public var authLog: [String] {
        ((try? String(contentsOfFile: workDirectory + "/auth.log", encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    /// The messages received so far, in arrival order.
    public func messages() -> [[UInt8]] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: outDirectory)) ?? [])
            .filter { $0.hasSuffix(".eml") }.sorted()
        return files.compactMap { FileManager.default.contents(atPath: outDirectory + "/" + $0).map { Array($0) } }
    }

    public struct Received: Decodable, Sendable {
        public var n: Int
        public var time: Double
        public var mail_from: String
        public var rcpts: [String]
        public var size: Int
        public var message_id: String
        public var tls: Bool
    }

    /// The index lines: one per message received.
    public func index() -> [Received] {
        guard let text = try? String(contentsOfFile: outDirectory + "/index.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Received.self, from: Data($0.utf8)) }
    }

    /// Waits until at least `count` messages arrived (or `timeout` passes); returns the count.
    @discardableResult
    public func waitForMessages(_ count: Int, timeout: Double) async -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let n = index().count
            if n >= count || Date() >= deadline { return n }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    public func stop() async {
        await process.killAndWait()
        try? FileManager.default.removeItem(atPath: workDirectory)
    }
}

/// A throwaway self-signed certificate for TLS tests.
public func makeSelfSignedCertificate(in directory: String) throws -> (cert: String, key: String) {
    let cert = directory + "/cert.pem"
    let key = directory + "/key.pem"
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    p.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                   "-keyout", key, "-out", cert]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw SubprocessError("openssl req failed") }
    return (cert, key)
}
