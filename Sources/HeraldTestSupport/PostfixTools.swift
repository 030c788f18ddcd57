import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Postfix's `smtp-sink`: a fast SMTP server that accepts and discards everything, on
/// 127.0.0.1 and a port of its own, as the remote MX of load and backlog tests.
public final class PostfixSink: @unchecked Sendable {
    public let port: Int
    let process: ChildProcess

    /// Starts `smtp-sink` with room for `backlog` pending connections; returns once it answers.
    public init(backlog: Int = 256) async throws {
        port = try HeraldProcess.freeLoopbackPort()
        var arguments = ["-c", "127.0.0.1:\(port)", String(backlog)]
        if getuid() == 0 { arguments = ["-u", "postfix"] + arguments }
        process = try ChildProcess(executable: "smtp-sink", arguments: arguments)
        let process = self.process
        if try await SMTPTestClient.waitForGreeting(port: port, timeout: 10, while: { process.isRunning }) { return }
        await process.killAndWait()
        throw SubprocessError("smtp-sink did not start on 127.0.0.1:\(port)")
    }

    public func stop() async {
        await process.killAndWait()
    }
}

/// Postfix's `smtp-source`: many SMTP clients at once, the way a busy application submits.
public enum PostfixSource {
    /// Sends `messages` messages of `size` octets over `sessions` parallel sessions;
    /// `reuseConnections: false` opens a new connection for every message (`smtp-source`
    /// without `-d`), as most applications do. Throws unless every message was accepted.
    public static func send(
        port: Int, messages: Int, sessions: Int = 20, size: Int = 200, reuseConnections: Bool = false,
        from: String = "s@b.local", to: String = "r@example.com", timeout: Double = 600
    ) async throws {
        var arguments = ["-s", String(sessions), "-m", String(messages), "-l", String(size), "-f", from, "-t", to]
        if reuseConnections { arguments.insert("-d", at: 0) }
        let result = try await Command.run("smtp-source", arguments + ["127.0.0.1:\(port)"], timeout: timeout)
        guard result.termination.succeeded, !result.timedOut, result.stderr.isEmpty else {
            throw SubprocessError("smtp-source failed: \(result)")
        }
    }
}

/// Memory of a running process, from `/proc/<pid>/status`.
public enum ProcessMemory {
    /// Resident set size in bytes (`VmRSS`), nil if the process is gone.
    public static func residentBytes(_ pid: Int32) -> Int? {
        field("VmRSS", pid)
    }

    /// The largest resident set size so far (`VmHWM`).
    public static func peakResidentBytes(_ pid: Int32) -> Int? {
        field("VmHWM", pid)
    }

    private static func field(_ name: String, _ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 3, let value = Int(parts[1]), parts[2] == "kB" else { return nil }
            return value * 1024
        }
        return nil
    }

    /// Mebibytes with one decimal, for printed figures.
    public static func mebibytes(_ bytes: Int) -> String {
        String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }
}
