import Foundation
import HeraldTestSupport
import Testing

/// The README's first run, done twice: `herald --version`, `herald tenant create` for a
/// tenant that exists (a clear refusal naming `herald tenant key-add`, whose new key
/// then works next to the first one), and the test MX restarted on the folder where it
/// already stored messages.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct FirstRun {
        @Test("herald --version prints herald and a semantic version, and exits 0")
        func version() async throws {
            let r = try await Command.run(HeraldProcess.binary, ["--version"], timeout: 30)
            #expect(r.termination.succeeded, "\(r)")
            let line = r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(line.wholeMatch(of: /herald \d+\.\d+\.\d+(-[0-9A-Za-z.]+)?/) != nil, "\(r)")
            #expect(r.stderrText.isEmpty, "\(r)")
        }

        @Test("creating a tenant that exists fails with a message naming key-add; key-add's key works next to the first")
        func tenantCreateTwice() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "first_run")
            let httpPort = try HeraldProcess.freeLoopbackPort()
            let options = CampaignIT.options(database: database, httpPort: httpPort, delivery: false)
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let first = try await herald.cli(["tenant", "create", "acme"])
                #expect(first.termination.succeeded, "\(first)")
                let firstKey = try #require(Self.apiKey(first), "\(first)")

                // The second run of the walk-through: refused, clearly, with nothing on stdout.
                let again = try await herald.cli(["tenant", "create", "acme"])
                #expect(!again.termination.succeeded, "\(again)")
                #expect(again.exitCode == 1, "\(again)")
                #expect(again.stdoutText.isEmpty, "\(again)")
                #expect(again.stderrText ==
                    "herald: tenant \"acme\" exists; to get a new API key run: herald tenant key-add acme\n")
                // Names are unique ignoring case, and the hint quotes what the shell needs.
                let shouted = try await herald.cli(["tenant", "create", "ACME"])
                #expect(shouted.exitCode == 1, "\(shouted)")
                #expect(shouted.stderrText.contains("herald tenant key-add ACME"), "\(shouted)")
                let spaced = try await herald.cli(["tenant", "create", "Big Co"])
                #expect(spaced.termination.succeeded, "\(spaced)")
                let spacedAgain = try await herald.cli(["tenant", "create", "Big Co"])
                #expect(spacedAgain.exitCode == 1, "\(spacedAgain)")
                #expect(spacedAgain.stderrText.contains("herald tenant key-add 'Big Co'"), "\(spacedAgain)")

                // Still one tenant named acme, with its one key.
                let list = try await herald.cli(["tenant", "list", "--json"])
                let tenants = try #require(
                    try JSONSerialization.jsonObject(with: Data(list.stdoutText.utf8)) as? [[String: Any]], "\(list)")
                #expect(tenants.filter { ($0["name"] as? String)?.lowercased() == "acme" }.count == 1, "\(list)")

                // What the message says to run: a second key, printed once, different.
                let added = try await herald.cli(["tenant", "key-add", "acme"])
                #expect(added.termination.succeeded, "\(added)")
                let secondKey = try #require(Self.apiKey(added), "\(added)")
                #expect(secondKey != firstKey)
                let keys = try await herald.cli(["tenant", "keys", "acme", "--json"])
                let keyRows = try #require(
                    try JSONSerialization.jsonObject(with: Data(keys.stdoutText.utf8)) as? [[String: Any]], "\(keys)")
                #expect(keyRows.count == 2, "\(keys)")

                // Both keys open the API as tenant acme; a made-up one does not.
                for key in [firstKey, secondKey] {
                    let reply = try await CampaignIT.http("GET", "http://127.0.0.1:\(httpPort)/v1/lists", key: key)
                    #expect(reply.status == 200, "\(reply.text)")
                }
                let wrong = try await CampaignIT.http("GET", "http://127.0.0.1:\(httpPort)/v1/lists",
                                                      key: "hk_not-a-key")
                #expect(wrong.status == 401, "\(wrong.text)")
            }
        }

        @Test("key-add for a tenant that does not exist fails and prints no key")
        func keyAddUnknownTenant() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "first_run_nokey")
            let r = try await Command.run(HeraldProcess.binary,
                                          ["tenant", "key-add", "nobody", "--database-url", database], timeout: 60)
            #expect(r.exitCode == 1, "\(r)")
            #expect(Self.apiKey(r) == nil, "\(r)")
            #expect(r.stderrText.contains("no tenant named nobody"), "\(r)")
        }

        @Test("the test MX restarted on its folder numbers on after what it stored and overwrites nothing")
        func sinkRestartKeepsMessages() async throws {
            let directory = try TemporaryDirectory.make(prefix: "herald-first-run-sink")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let out = directory + "/out"
            var sent: [String] = []
            for run in 0..<3 {
                let sink = try await Self.startSink(out: out, log: directory + "/stdout-\(run)")
                do {
                    for i in 0..<2 {
                        let tag = "run\(run)-message\(i)-\(UUID().uuidString.prefix(8))"
                        let reply = try SMTPTestClient.submit(
                            port: sink.port, to: ["someone@sink.test"],
                            message: TestMessage.make(tag: tag, to: "someone@sink.test"))
                        #expect(reply.code == 250, "\(reply)")
                        sent.append(tag)
                    }
                    // Refused mail is neither stored nor numbered.
                    let refused = try SMTPTestClient.submit(port: sink.port, to: ["permfail@sink.test"],
                                                            message: TestMessage.make(tag: "refused-\(run)"))
                    #expect(refused.code == 550, "\(refused)")
                } catch {
                    await sink.process.killAndWait()
                    throw error
                }
                await sink.process.killAndWait()
            }
            let files = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".eml") }.sorted()
            #expect(files == (1...6).map { String(format: "%07d.eml", $0) })
            // Each file holds the message of its number, in the order sent.
            for (file, tag) in zip(files, sent) {
                let text = try String(contentsOfFile: out + "/" + file, encoding: .utf8)
                #expect(text.contains("Subject: test \(tag)\r\n"), "\(file) should hold \(tag)")
            }
            // index.jsonl was appended to, one line per stored message, numbers 1…6.
            let index = try String(contentsOfFile: out + "/index.jsonl", encoding: .utf8)
            let numbers = index.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["n"] as? Int
            }
            #expect(numbers == Array(1...6), "\(index)")
        }

        // MARK: Helpers

        /// The key of an `api_key: …` line, if the output has one.
        static func apiKey(_ r: CommandResult) -> String? {
            r.stdoutText.split(separator: "\n").first { $0.hasPrefix("api_key:") }
                .map { $0.dropFirst("api_key:".count).trimmingCharacters(in: .whitespaces) }
        }

        struct Sink {
            var process: ChildProcess
            var port: Int
        }

        /// `scripts/lib/sink.py --out out` on an ephemeral loopback port, once it listens.
        static func startSink(out: String, log: String) async throws -> Sink {
            let process = try ChildProcess(executable: "python3",
                                           arguments: [repositoryRoot + "/scripts/lib/sink.py", "--out", out],
                                           stdoutPath: log, stderrPath: log + ".err")
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                if let text = try? String(contentsOfFile: log, encoding: .utf8),
                   let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening 127.0.0.1:") }),
                   let port = Int(line.split(separator: ":").last ?? "") {
                    return Sink(process: process, port: port)
                }
                guard process.isRunning else { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            await process.killAndWait()
            let err = (try? String(contentsOfFile: log + ".err", encoding: .utf8)) ?? ""
            throw SubprocessError("sink.py did not start: \(err)")
        }
    }
}
