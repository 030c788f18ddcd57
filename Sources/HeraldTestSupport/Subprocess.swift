import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a child process ended.
public struct Termination: Sendable, Equatable, CustomStringConvertible {
    /// The exit code, or the signal number when `signaled`.
    public var status: Int32
    public var signaled: Bool

    public init(status: Int32, signaled: Bool) {
        self.status = status
        self.signaled = signaled
    }

    public var description: String { signaled ? "killed by signal \(status)" : "exit \(status)" }
    public var succeeded: Bool { !signaled && status == 0 }
}

/// One child process (a thin layer over `Foundation.Process`) that can be awaited
/// without blocking a thread of the cooperative pool, and signalled by pid.
///
/// Every live child is also remembered in a process-wide registry that is SIGKILLed
/// when the test process exits, so that a crashed or abandoned test never leaves a
/// `herald serve` (or a client) running behind it.
public final class ChildProcess: @unchecked Sendable {
    private let process = Process()
    private let lock = NSLock()
    private var termination: Termination?
    public let executable: String
    public let arguments: [String]

    /// Starts `executable` (a path, or a name looked up in `PATH`). Output goes to the
    /// given files (nil: discarded); stdin comes from `stdinPath` (nil: /dev/null).
    public init(executable: String, arguments: [String], stdoutPath: String? = nil, stderrPath: String? = nil,
                stdinPath: String? = nil, environment: [String: String]? = nil,
                currentDirectory: String? = nil) throws {
        let path = try Executables.resolve(executable)
        self.executable = path
        self.arguments = arguments
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let handles = [try Self.handle(reading: stdinPath), try Self.handle(writing: stdoutPath),
                       try Self.handle(writing: stderrPath)]
        process.standardInput = handles[0]
        process.standardOutput = handles[1]
        process.standardError = handles[2]
        process.terminationHandler = { [weak self] p in
            let t = Termination(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal)
            self?.finished(t)
        }
        defer {
            // The child has its own copies: the test process's would stay open as long as
            // this object lives (hundreds over a run, inherited by every later child).
            for (handle, path) in zip(handles, [stdinPath, stdoutPath, stderrPath]) where path != nil {
                try? handle.close()
            }
        }
        try process.run()
        ChildRegistry.shared.add(process.processIdentifier)
    }

    deinit {
        if termination == nil && process.isRunning {
            posixKill(process.processIdentifier, SIGKILL)
        }
    }

    private static func handle(writing path: String?) throws -> FileHandle {
        guard let path else { return FileHandle.nullDevice }
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw SubprocessError("cannot open \(path) for writing")
        }
        h.seekToEndOfFile()
        return h
    }

    private static func handle(reading path: String?) throws -> FileHandle {
        guard let path else { return FileHandle.nullDevice }
        guard let h = FileHandle(forReadingAtPath: path) else { throw SubprocessError("cannot open \(path)") }
        return h
    }

    private func finished(_ t: Termination) {
        lock.lock()
        termination = t
        lock.unlock()
        ChildRegistry.shared.remove(process.processIdentifier)
    }

    public var pid: Int32 { process.processIdentifier }

    /// How it ended, or nil while it runs.
    public var exit: Termination? {
        lock.lock()
        defer { lock.unlock() }
        return termination
    }

    public var isRunning: Bool { exit == nil }

    /// Sends `signal` (no-op once the child has been reaped).
    public func send(_ signal: Int32) {
        if exit == nil { _ = posixKill(pid, signal) }
    }

    /// Waits for the child to end, at most `timeout` seconds; nil on time-out.
    @discardableResult
    public func wait(timeout: Double) async -> Termination? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let t = exit { return t }
            if Date() >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// SIGKILL, then wait until it is reaped.
    @discardableResult
    public func killAndWait() async -> Termination? {
        send(SIGKILL)
        return await wait(timeout: 10)
    }
}

/// Pids of children still running; killed at exit of the test process.
final class ChildRegistry: @unchecked Sendable {
    static let shared = ChildRegistry()
    private let lock = NSLock()
    private var pids = Set<Int32>()
    private var registered = false

    func add(_ pid: Int32) {
        lock.lock()
        defer { lock.unlock() }
        pids.insert(pid)
        if !registered {
            registered = true
            atexit { ChildRegistry.shared.killAll() }
        }
    }

    func remove(_ pid: Int32) {
        lock.lock()
        defer { lock.unlock() }
        pids.remove(pid)
    }

    func killAll() {
        lock.lock()
        let all = pids
        lock.unlock()
        for pid in all { _ = posixKill(pid, SIGKILL) }
    }
}

public struct SubprocessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The result of a command run to completion.
public struct CommandResult: Sendable, CustomStringConvertible {
    public var termination: Termination
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    public var timedOut: Bool

    public var exitCode: Int32 { termination.signaled ? 128 + termination.status : termination.status }
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }

    public var description: String {
        "\(termination)\(timedOut ? " (timed out)" : "")\n--- stdout ---\n\(stdoutText)\n--- stderr ---\n\(stderrText)"
    }
}

/// Runs commands to completion with captured output and a time-out.
public enum Command {
    /// Runs `executable` with `arguments`, feeding `stdin`; kills it after `timeout` seconds.
    public static func run(_ executable: String, _ arguments: [String], stdin: [UInt8]? = nil,
                           timeout: Double = 60, environment: [String: String]? = nil,
                           currentDirectory: String? = nil) async throws -> CommandResult {
        let dir = try TemporaryDirectory.make(prefix: "herald-cmd")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/stdout", err = dir + "/stderr"
        var inPath: String?
        if let stdin {
            inPath = dir + "/stdin"
            _ = FileManager.default.createFile(atPath: inPath!, contents: Data(stdin))
        }
        let child = try ChildProcess(executable: executable, arguments: arguments, stdoutPath: out, stderrPath: err,
                                     stdinPath: inPath, environment: environment,
                                     currentDirectory: currentDirectory)
        var timedOut = false
        var termination = await child.wait(timeout: timeout)
        if termination == nil {
            timedOut = true
            termination = await child.killAndWait()
        }
        return CommandResult(
            termination: termination ?? Termination(status: SIGKILL, signaled: true),
            stdout: (try? Array(Data(contentsOf: URL(fileURLWithPath: out)))) ?? [],
            stderr: (try? Array(Data(contentsOf: URL(fileURLWithPath: err)))) ?? [],
            timedOut: timedOut)
    }
}

/// Runs the Python client scripts of `Tests/IntegrationTests/Clients`.
public enum Python {
    /// `python3 script args…`, output captured, killed after `timeout` seconds.
    public static func run(_ script: String, _ arguments: [String] = [], stdin: [UInt8]? = nil,
                           timeout: Double = 60) async throws -> CommandResult {
        try await Command.run("python3", ["-u", script] + arguments, stdin: stdin, timeout: timeout,
                              environment: ["PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"])
    }

    /// Starts `python3 script args…` in the background (for load generators), output to files.
    public static func start(_ script: String, _ arguments: [String] = [], stdoutPath: String? = nil,
                             stderrPath: String? = nil) throws -> ChildProcess {
        try ChildProcess(executable: "python3", arguments: ["-u", script] + arguments, stdoutPath: stdoutPath,
                         stderrPath: stderrPath,
                         environment: ["PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"])
    }
}

public enum Executables {
    /// `name` if it contains a slash, else the first match in `PATH`.
    public static func resolve(_ name: String) throws -> String {
        if name.contains("/") { return name }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw SubprocessError("\(name): not found in PATH")
    }

    public static func isAvailable(_ name: String) -> Bool { (try? resolve(name)) != nil }
}

public enum TemporaryDirectory {
    /// A new, empty directory under the system temporary directory.
    /// `base` overrides `$TMPDIR` (e.g. a tmpfs for a test that writes many files).
    public static func make(prefix: String, base: String? = nil) throws -> String {
        let base = base ?? ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let path = "\(base)/\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// `kill(2)`, callable from types that have a `kill()` method of their own.
@discardableResult
public func posixKill(_ pid: Int32, _ signal: Int32) -> Int32 {
    kill(pid, signal)
}
