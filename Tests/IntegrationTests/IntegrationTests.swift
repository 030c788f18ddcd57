import Foundation
import HeraldTestSupport
import Testing

/// Whole-process tests: the real `herald` binary (`$HERALD_BIN`, else
/// `.build/debug/herald`) against real clients on 127.0.0.1 with ephemeral ports.
///
/// Every scenario suite is nested in this one `.serialized` suite, so that only one
/// Herald server (and its clients) runs at a time: the CI machine has two cores, and
/// several of these tests are about timing (time-outs, slow clients, kill moments).
///
/// Each test starts its own `herald serve` (HeraldTestSupport's `HeraldProcess`: a
/// generated config in a fresh temporary directory, delivery off unless the test turns
/// it on) and removes it afterwards, also on failure. `HERALD_KEEP_TEST_DIRS=1` keeps
/// the directories (config, spool, herald.log, client journals) for a post-mortem.
/// Peers: Python 3 (Clients/*.py, stdlib only), swaks, openssl; scripts/lib/setup.sh
/// installs them.
@Suite(.serialized)
struct Integration {}

/// Shared helpers of the integration tests.
enum IT {
    /// `Tests/IntegrationTests/Clients`, where the Python client scripts live.
    static let clients: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Clients").path

    static func script(_ name: String) -> String { clients + "/" + name }

    /// Runs a client script and decodes the JSON document it prints last.
    static func runJSON(_ script: String, _ args: [String], timeout: Double = 60) async throws -> [String: Any] {
        let r = try await Python.run(Self.script(script), args, timeout: timeout)
        guard r.termination.succeeded, let line = r.stdoutText.split(separator: "\n").last,
              let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            throw SubprocessError("\(script) failed: \(r)")
        }
        return obj
    }

    /// A `[code, [lines]]` pair from the Python reports, as "code first-line".
    static func reply(_ any: Any?) -> String {
        guard let pair = any as? [Any], pair.count == 2, let code = pair[0] as? Int else { return "<none: \(String(describing: any))>" }
        let lines = pair[1] as? [String] ?? []
        return "\(code) " + (lines.first ?? "")
    }

    /// Writes `bytes` to a fresh file in `directory` and returns its path.
    static func writeTemp(_ bytes: [UInt8], in directory: String, name: String) throws -> String {
        let path = directory + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// After an abuse scenario: a well-behaved client still gets its message queued.
    static func expectServesNormally(_ herald: HeraldProcess, port: Int? = nil, source: String? = nil,
                                     sourceLocation: SourceLocation = #_sourceLocation) async {
        let tag = "normal-\(UUID().uuidString.prefix(8))"
        let message = TestMessage.make(tag: tag)
        do {
            let reply = try SMTPTestClient.submit(port: port ?? herald.port(), message: message, source: source)
            #expect(reply.code == 250, "a normal message after the abuse: \(reply)\n\(herald.diagnostics())",
                    sourceLocation: sourceLocation)
            if let id = reply.queueID {
                #expect(herald.storedMessage(id).map { Array($0.suffix(message.count)) == message } == true,
                        "message \(id) stored intact", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("a normal message after the abuse failed: \(error)\n\(herald.diagnostics())",
                         sourceLocation: sourceLocation)
        }
    }
}
