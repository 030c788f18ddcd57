import Foundation
import HeraldTestSupport
import Spool
import Testing

/// Durability: `250` means the message is on disk. Sixteen concurrent clients
/// (Clients/durability_load.py) submit unique messages while Herald is SIGKILLed at a
/// random moment, several rounds in a row, restarting in between (recovery runs each
/// time). Afterwards:
/// - every acknowledged message is in queue/ under the acknowledged id, byte for byte
///   (Herald's added lines + the client's bytes), with an envelope that loads and
///   matches (sender, recipients, size and checksum);
/// - no message that was not acknowledged is there, except those whose final dot was
///   sent but whose reply was lost when the server died (counted, allowed either way);
/// - tmp/ is empty, corrupt/ is empty, no `.msg` is left without its `.env`.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct Durability {
        struct Submitted {
            var sender: String
            var recipients: [String]
            var message: [UInt8]
            var ack: String?
            var rejected: String?
        }

        /// Reads the clients' journal (see durability_load.py for the format).
        static func readJournal(_ path: String) throws -> [String: Submitted] {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            var byKey: [String: Submitted] = [:]
            for line in text.split(separator: "\n") {
                let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                switch f.first {
                case "DOT" where f.count == 5:
                    guard let data = Data(base64Encoded: f[4]) else { throw SubprocessError("bad base64 in \(f[1])") }
                    byKey[f[1]] = Submitted(sender: f[2], recipients: f[3].split(separator: ",").map(String.init),
                                            message: Array(data))
                case "ACK" where f.count == 3:
                    byKey[f[1]]?.ack = f[2]
                case "REJ" where f.count >= 3:
                    byKey[f[1]]?.rejected = f[2...].joined(separator: " ")
                default:
                    continue
                }
            }
            return byKey
        }

        static func durabilityKey(_ message: [UInt8]) -> String? {
            // Byte-wise: in Swift "\r\n" is one Character, so work on UTF-8 code units.
            let head = Array(message.prefix(8192))
            let name = Array("\r\nX-Durability-Key: ".utf8)
            guard let r = head.firstRange(of: name) else { return nil }
            let value = head[r.upperBound...].prefix { $0 != 0x0D && $0 != 0x0A }
            return String(decoding: value, as: UTF8.self)
        }

        @Test("SIGKILL at random moments under 16 concurrent clients: every 250 survives, nothing else does",
              arguments: [false, true])
        func killUnderLoad(spoolJournal: Bool) async throws {
            var options = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            options.spoolJournal = spoolJournal
            options.maxConnectionsPerClient = 100
            try await HeraldProcess.with(options) { herald in
                let journal = herald.directory + "/journal.tsv"
                let rounds = 4
                var killedAfter: [Double] = []
                for round in 1...rounds {
                    if round > 1 { try await herald.restart() }
                    let load = try Python.start(IT.script("durability_load.py"), [
                        "--port", "\(herald.port())", "--threads", "16", "--round", "\(round)",
                        "--journal", journal, "--max-seconds", "20",
                    ], stdoutPath: herald.directory + "/load-\(round).out", stderrPath: herald.directory + "/load-\(round).err")
                    // Start the clock once this round's clients are running.
                    let marker = "START\t\(round)\t"
                    for _ in 0..<500 {
                        if (try? String(contentsOfFile: journal, encoding: .utf8))?.contains(marker) == true { break }
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    let delay = Double.random(in: 0.3...2.0)
                    try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
                    let end = await herald.kill()
                    #expect(end?.signaled == true && end?.status == SIGKILL, "round \(round): \(String(describing: end))")
                    killedAfter.append(delay)
                    if await load.wait(timeout: 30) == nil {
                        await load.killAndWait()
                        Issue.record("round \(round): the load generator did not finish after the kill")
                    }
                }
                // Restart once more: recovery runs on what the last kill left behind.
                try await herald.restart()
                #expect(herald.spoolFiles("tmp").isEmpty, "tmp/ is empty once recovery ran: \(herald.spoolFiles("tmp"))")
                let recoveries = herald.log.split(separator: "\n").filter { $0.contains("spool recovered") }
                #expect(recoveries.count >= rounds + 1, "recovery ran at every start")
                if spoolJournal {
                    // Each kill left segments behind, read by the next start.
                    let replays = herald.log.split(separator: "\n").filter { $0.contains("spool journal replayed") }
                    #expect(replays.count >= 1, "the journal's segments were replayed after the kills")
                }
                let stopped = await herald.stop(timeout: 30)
                #expect(stopped?.succeeded == true, "\(String(describing: stopped))\n\(herald.diagnostics())")

                let submitted = try Self.readJournal(journal)
                let acked = submitted.filter { $0.value.ack != nil }
                let rejected = submitted.filter { $0.value.rejected != nil }
                let inFlight = Set(submitted.filter { $0.value.ack == nil && $0.value.rejected == nil }.keys)
                #expect(acked.count >= 50, "enough traffic to mean something: \(acked.count) acknowledged")
                #expect(rejected.isEmpty, "no rejections expected: \(rejected.mapValues { $0.rejected ?? "" })")

                // What is on disk.
                let spool = try Spool(path: herald.spoolPath, configuration: .init(committerThreads: 1))
                #expect(herald.spoolFiles("tmp").isEmpty, "tmp/ is empty after recovery: \(herald.spoolFiles("tmp"))")
                #expect(herald.spoolFiles("corrupt").isEmpty, "nothing corrupt: \(herald.spoolFiles("corrupt"))")
                #expect(herald.spoolFiles("hold").isEmpty)
                let files = herald.spoolFiles("queue")
                let envs = Set(files.filter { $0.hasSuffix(".env") }.map { ($0 as NSString).lastPathComponent.dropLast(4) })
                let msgs = Set(files.filter { $0.hasSuffix(".msg") }.map { ($0 as NSString).lastPathComponent.dropLast(4) })
                #expect(envs == msgs, "every .env has its .msg and vice versa: \(envs.symmetricDifference(msgs))")
                #expect(files.allSatisfy { $0.hasSuffix(".env") || $0.hasSuffix(".msg") }, "\(files)")

                var spooledKeys: [String: String] = [:]   // key → queue id
                var problems: [String] = []
                for idText in envs.sorted() {
                    let id = String(idText)
                    guard let qid = QueueID(id) else { problems.append("bad id \(id)"); continue }
                    let env: Envelope
                    let stored: [UInt8]
                    do {
                        env = try spool.loadEnvelope(qid, in: .queue)
                        stored = try spool.loadMessage(qid, in: .queue, envelope: env)
                    } catch {
                        problems.append("\(id): cannot load: \(error)")
                        continue
                    }
                    guard let key = Self.durabilityKey(stored) else { problems.append("\(id): no X-Durability-Key"); continue }
                    if let other = spooledKeys[key] { problems.append("\(key) spooled twice: \(other) and \(id)") }
                    spooledKeys[key] = id
                    guard let sent = submitted[key] else {
                        problems.append("\(id) (\(key)) is spooled but its final dot was never sent")
                        continue
                    }
                    if sent.rejected != nil { problems.append("\(id) (\(key)) is spooled but was rejected: \(sent.rejected!)") }
                    if let ack = sent.ack, ack != id { problems.append("\(key) acknowledged as \(ack) but spooled as \(id)") }
                    for p in TestMessage.problems(stored: stored, original: sent.message, queueID: id) {
                        problems.append("\(id) (\(key)): \(p)")
                    }
                    if env.id.rawValue != id { problems.append("\(id): envelope id \(env.id)") }
                    if env.sender != sent.sender { problems.append("\(id): sender \(env.sender), sent \(sent.sender)") }
                    if env.recipients.map(\.address) != sent.recipients {
                        problems.append("\(id): recipients \(env.recipients.map(\.address)), sent \(sent.recipients)")
                    }
                    if env.messageFile.size != stored.count { problems.append("\(id): messageFile.size \(env.messageFile.size) ≠ \(stored.count)") }
                    if !env.recipients.allSatisfy({ $0.state == .pending }) { problems.append("\(id): recipients not pending") }
                }
                for (key, sent) in acked where spooledKeys[key] == nil {
                    problems.append("acknowledged \(key) as \(sent.ack!) but it is not in the spool")
                }
                #expect(problems.isEmpty, "\(problems.count) problem(s):\n\(problems.prefix(30).joined(separator: "\n"))")

                let inFlightKept = inFlight.filter { spooledKeys[$0] != nil }.count
                print("durability: \(rounds) rounds, killed after \(killedAfter.map { String(format: "%.2f", $0) }) s; "
                      + "\(submitted.count) final dots sent, \(acked.count) acknowledged, \(rejected.count) rejected, "
                      + "\(inFlight.count) in flight at a kill (\(inFlightKept) kept, \(inFlight.count - inFlightKept) dropped); "
                      + "\(spooledKeys.count) messages in the spool; recoveries: "
                      + recoveries.dropFirst().map { line in
                          line.split(separator: " ").filter { $0.hasPrefix("tmp_removed=") || $0.hasPrefix("orphans_removed=") }
                              .joined(separator: ",")
                      }.joined(separator: " | "))
            }
        }
    }
}
