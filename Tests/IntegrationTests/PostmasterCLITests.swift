import Foundation
import HeraldTestSupport
import Spool
import Testing

/// The postmaster's `herald queue …` commands on a live spool: while `herald serve`
/// runs and a client keeps submitting mail, hold/release/delete/retry/list/show/stats
/// move the right files, never disturb the server, and every `250` the client got
/// stays valid.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct PostmasterCLI {
        /// Submits messages on its own thread until stopped; records every reply.
        final class BackgroundLoad: @unchecked Sendable {
            private let lock = NSLock()
            private var stopping = false
            private var finished = false
            private(set) var acknowledged: [String] = []
            private(set) var failures: [String] = []

            init(port: Int) {
                let thread = Thread { [self] in
                    var n = 0
                    while !lock.withLock({ stopping }) {
                        n += 1
                        do {
                            let r = try SMTPTestClient.submit(port: port, message: TestMessage.make(tag: "load-\(n)", bodyLines: 3))
                            lock.withLock {
                                if let id = r.queueID { acknowledged.append(id) } else { failures.append(r.description) }
                            }
                        } catch {
                            lock.withLock { failures.append("\(error)") }
                        }
                        usleep(5_000)
                    }
                    lock.withLock { finished = true }
                }
                thread.start()
            }

            var count: Int { lock.withLock { acknowledged.count } }

            func stop() async -> (acknowledged: [String], failures: [String]) {
                lock.withLock { stopping = true }
                while !lock.withLock({ finished }) { try? await Task.sleep(for: .milliseconds(10)) }
                return lock.withLock { (acknowledged, failures) }
            }
        }

        func submit(_ herald: HeraldProcess, _ tag: String) throws -> String {
            let r = try SMTPTestClient.submit(port: herald.port(), message: TestMessage.make(tag: tag))
            guard let id = r.queueID else { throw SubprocessError("not queued: \(r)") }
            return id
        }

        func exists(_ herald: HeraldProcess, _ id: String, in queue: String) -> Bool {
            herald.messagePath(id, in: queue) != nil && herald.envelopePath(id, in: queue) != nil
        }

        @Test("hold, release, delete, retry, list, show and stats while the server accepts mail")
        func liveSpool() async throws {
            try await HeraldProcess.with(HeraldProcess.Options(listeners: [.relay(tls: "off")])) { herald in
                let ids = try (1...5).map { try submit(herald, "cli-\($0)") }
                let load = BackgroundLoad(port: herald.port())
                defer { Task { _ = await load.stop() } }
                while load.count < 3 { try await Task.sleep(for: .milliseconds(20)) }

                // hold: both files move from queue/<xx>/ to hold/<xx>/.
                let hold = try await herald.cli(["queue", "hold", ids[0], ids[1]])
                #expect(hold.termination.succeeded, "\(hold)")
                for id in ids[0...1] {
                    #expect(exists(herald, id, in: "hold") && !exists(herald, id, in: "queue"), "\(id) held")
                }
                var list = try await herald.queueList()
                #expect(list.first { $0.id == ids[0] }?.queue == "hold")
                #expect(list.first { $0.id == ids[2] }?.queue == "queue")
                let text = try await herald.cli(["queue", "list"])
                #expect(text.stdoutText.contains("\(ids[0])!"), "held messages are marked: \(text.stdoutText)")
                let show = try await herald.queueShow(ids[0])
                #expect(show.termination.succeeded && show.stdoutText.contains("*** ENVELOPE (hold) ***"), "\(show)")

                // release: back to queue/.
                let release = try await herald.cli(["queue", "release", ids[0]])
                #expect(release.termination.succeeded, "\(release)")
                #expect(exists(herald, ids[0], in: "queue") && !exists(herald, ids[0], in: "hold"))

                // delete: from the queue and from hold.
                let delete = try await herald.cli(["queue", "delete", ids[2], ids[1]])
                #expect(delete.termination.succeeded, "\(delete)")
                for id in [ids[2], ids[1]] {
                    #expect(!exists(herald, id, in: "queue") && !exists(herald, id, in: "hold"))
                    #expect(herald.messagePath(id, in: "queue") == nil && herald.messagePath(id, in: "hold") == nil)
                }
                let gone = try await herald.queueShow(ids[2])
                #expect(gone.exitCode == 1, "show of a deleted message: \(gone)")
                let unknown = try await herald.cli(["queue", "hold", "0000000000000ZZZZZZZ"])
                #expect(unknown.exitCode == 1, "\(unknown)")
                let malformed = try await herald.cli(["queue", "show", "../../etc/passwd"])
                #expect(malformed.exitCode != 0, "\(malformed)")

                // retry: a deferred recipient (set up through the spool API, as delivery would) becomes due now.
                let spool = try Spool(path: herald.spoolPath, configuration: .init(committerThreads: 1))
                let qid = try #require(QueueID(ids[3]))
                // With the spool journal on, it may still have no files: have them written.
                spool.includeJournalSegments()
                if spool.isOnlyInJournal(qid) { #expect(spool.waitForJournalWriteOut(of: [qid], timeout: 30)) }
                var env = try spool.loadEnvelope(qid, in: .queue)
                let later = Date().addingTimeInterval(3600)
                for i in env.recipients.indices {
                    env.recipients[i].state = .deferred
                    env.recipients[i].attempts = 1
                    env.recipients[i].nextAttempt = later
                    env.recipients[i].lastReply = "451 4.7.1 try again later"
                }
                try spool.update(env, in: .queue)
                let before = Date()
                let retry = try await herald.cli(["queue", "retry", ids[3]])
                #expect(retry.termination.succeeded, "\(retry)")
                let retried = try spool.loadEnvelope(qid, in: .queue)
                #expect(retried.recipients.allSatisfy { ($0.nextAttempt ?? later) <= Date() && ($0.nextAttempt ?? later) >= before.addingTimeInterval(-1) },
                        "next attempt is now: \(retried.recipients)")
                #expect(retried.recipients.allSatisfy { $0.state == .deferred && $0.attempts == 1 })
                #expect(try spool.loadMessage(qid, in: .queue) == herald.storedMessage(ids[3]), "the message is untouched")

                // stats while the load runs.
                let statsLive = try await herald.cli(["queue", "stats", "--json"])
                #expect(statsLive.termination.succeeded, "\(statsLive)")

                // hold --all / release --all while mail keeps arriving.
                let holdAll = try await herald.cli(["queue", "hold", "--all"])
                #expect(holdAll.termination.succeeded && holdAll.stdoutText.contains("held"), "\(holdAll)")
                #expect(exists(herald, ids[4], in: "hold"))
                let releaseAll = try await herald.cli(["queue", "release", "--all"])
                #expect(releaseAll.termination.succeeded, "\(releaseAll)")
                #expect(herald.spoolIDs("hold").isEmpty, "nothing left on hold: \(herald.spoolIDs("hold"))")

                // The client was served throughout, and every acknowledged message is intact.
                let (acked, failures) = await load.stop()
                #expect(failures.isEmpty, "\(failures)\n\(herald.diagnostics())")
                #expect(acked.count >= 3)
                list = try await herald.queueList()
                let listed = Set(list.map(\.id))
                for id in acked {
                    #expect(listed.contains(id), "acknowledged \(id) is listed")
                    // In queue/ (or, with the spool journal on, maybe still only in journal/).
                    #expect(herald.storedMessage(id) != nil, "acknowledged \(id) is queued")
                }
                #expect(listed == Set(acked).union([ids[0], ids[3], ids[4]]), "exactly the expected messages")

                // stats agree with the list once the load has stopped.
                let stats = try await herald.cli(["queue", "stats", "--json"])
                let json = try JSONSerialization.jsonObject(with: Data(stats.stdout)) as? [String: Any]
                let messages = json?["messages"] as? [String: Int]
                let recipients = json?["recipients"] as? [String: Int]
                #expect(messages?["queue"] == list.count, "\(stats.stdoutText)")
                #expect(messages?["hold"] == 0 && messages?["corrupt"] == 0, "\(stats.stdoutText)")
                #expect(recipients?["deferred"] == retried.recipients.count, "\(stats.stdoutText)")
                #expect(recipients?["pending"] == list.reduce(0) { $0 + $1.recipients.count } - retried.recipients.count)

                // delete --all empties the spool; the server still accepts afterwards.
                let deleteAll = try await herald.cli(["queue", "delete", "--all"])
                #expect(deleteAll.termination.succeeded, "\(deleteAll)")
                #expect(try await herald.queueList().isEmpty)
                #expect(herald.spoolFiles("queue").isEmpty && herald.spoolFiles("hold").isEmpty)
                await IT.expectServesNormally(herald)
                #expect(try await herald.queueList().count == 1)
                #expect(herald.spoolFiles("corrupt").isEmpty)
            }
        }

        /// The CLI run as a user who does not own the spool (and is not root) refuses with
        /// a message that says whose spool it is, before touching anything.
        @Test("herald queue as another user than the spool's owner: a clear refusal, the spool untouched",
              .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
        func anotherUserIsRefused() async throws {
            try await HeraldProcess.with(HeraldProcess.Options(listeners: [.relay(tls: "off")])) { herald in
                try await DeliveryIT.submitAccepted(port: herald.port(), [DeliveryIT.mail("owned", to: ["r@example.com"])])
                let before = herald.spoolFiles("queue")
                // Let the other user reach the config (the spool itself stays 0750 root).
                for path in [herald.directory, herald.configPath] {
                    _ = chmod(path, path == herald.configPath ? 0o644 : 0o755)
                }
                for command in [["queue", "list", "--json"], ["queue", "hold", "--all"], ["queue", "delete", "--all"]] {
                    let r = try await Command.run("/usr/bin/setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                                                       HeraldProcess.binary] + command
                                                    + ["--config", herald.configPath], timeout: 30)
                    #expect(!r.termination.succeeded, "\(command): \(r)")
                    #expect(r.stderrText.contains("belongs to user root (uid 0); run herald as user root (uid 0) or as root"),
                            "\(command): \(r.stderrText)")
                }
                #expect(herald.spoolFiles("queue") == before)
                #expect(herald.spoolFiles("hold").isEmpty)
            }
        }
    }
}
