import Foundation
import HeraldTestSupport
import Testing

/// Webhooks against a real receiver (Clients/webhook_receiver.py on 127.0.0.1): one
/// endpoint fails each event twice before it takes it, one times out on each event's
/// first request, one always fails. Herald is SIGKILLed in the middle of the stream and
/// restarted. Afterwards every acknowledged message's `accepted` and `delivered` events
/// have reached their endpoints with a valid signature, and a test-send arrives too.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(4)))
    struct WebhooksEndToEnd {
        static let domain = "hooks.test"

        /// The receiver process and what it recorded.
        final class Receiver: @unchecked Sendable {
            let directory: String
            let process: ChildProcess
            let port: Int

            init() async throws {
                directory = NSTemporaryDirectory() + "herald-webhooks-" + UUID().uuidString
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                process = try ChildProcess(executable: "python3", arguments: [IT.script("webhook_receiver.py"), directory],
                                           stdoutPath: directory + "/stdout", stderrPath: directory + "/stderr")
                let deadline = Date().addingTimeInterval(20)
                var found: Int?
                while found == nil && Date() < deadline && process.isRunning {
                    if let text = try? String(contentsOfFile: directory + "/stdout", encoding: .utf8),
                       let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening 127.0.0.1:") }) {
                        found = Int(line.split(separator: ":").last!)
                    } else {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
                guard let found else { throw SubprocessError("webhook_receiver.py did not start") }
                port = found
            }

            func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

            func setSecrets(_ secrets: [String: String]) throws {
                try JSONSerialization.data(withJSONObject: secrets).write(to: URL(fileURLWithPath: directory + "/secrets.json"))
            }

            struct Request {
                var path: String
                var eventID: String
                var type: String
                var valid: Bool
                var answer: String
                var data: [String: Any]
                /// When the receiver recorded it (Unix time).
                var at: Double
            }

            func requests() -> [Request] {
                let text = (try? String(contentsOfFile: directory + "/requests.jsonl", encoding: .utf8)) ?? ""
                return text.split(separator: "\n").compactMap { line in
                    guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
                    let body = o["body"] as? [String: Any] ?? [:]
                    return Request(path: o["path"] as? String ?? "", eventID: o["event_id"] as? String ?? "",
                                   type: o["type"] as? String ?? "", valid: o["valid"] as? Bool ?? false,
                                   answer: "\(o["answer"] ?? "")", data: body["data"] as? [String: Any] ?? [:],
                                   at: o["at"] as? Double ?? 0)
                }
            }

            func stop() async {
                _ = await process.killAndWait()
            }
        }

        @Test("a failing, a timing-out and a good endpoint; SIGKILL mid-stream: every event arrives signed")
        func killMidStream() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "webhooks")
            let sink = try await SinkProcess()
            let receiver = try await Receiver()
            let httpPort = try HeraldProcess.freeLoopbackPort()
            let options = CampaignIT.options(database: database, httpPort: httpPort, delivery: true, toml: [
                DeliveryIT.route("*.\(Self.domain)", port: sink.port),
                """
                [webhooks]
                allow_private_addresses = true
                timeout = "1s"
                min_backoff = "200ms"
                max_backoff = "1s"
                flush_interval = "200ms"
                """,
            ])
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let api = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "acme"))
                var secrets: [String: String] = [:]
                var ids: [String: Int] = [:]
                for (path, events) in [("/flaky", ["accepted", "delivered"]), ("/slow", ["delivered"]),
                                       ("/fail", ["delivered"]), ("/ok", ["complained"])] {
                    let o = try await api.expect(201, "POST", "/v1/webhooks",
                                                 ["url": receiver.url(path), "events": events, "description": path])
                    secrets[path] = try #require(o["secret"] as? String)
                    ids[path] = try #require(o["id"] as? Int)
                    #expect(o["enabled"] as? Bool == true)
                }
                try receiver.setSecrets(secrets)
                // The secret is shown once; another tenant cannot see or touch the endpoint.
                let shown = try await api.expect(200, "GET", "/v1/webhooks/\(ids["/flaky"]!)")
                #expect(shown["secret"] == nil)
                let other = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "other"))
                #expect(try await other.call("GET", "/v1/webhooks/\(ids["/flaky"]!)").status == 404)
                #expect(try await other.call("DELETE", "/v1/webhooks/\(ids["/flaky"]!)").status == 404)
                #expect(try await other.call("POST", "/v1/webhooks/\(ids["/flaky"]!)/test").status == 404)
                #expect(try await other.call("GET", "/v1/webhooks/\(ids["/flaky"]!)/deliveries").status == 404)

                // 24 messages, each acknowledged before the next; SIGKILL after the 12th
                // (events of the last ones are still in the recorder's buffer, deliveries
                // in flight and in back-off), then the rest on the restarted Herald.
                var queued: [(id: String, email: String)] = []
                var killedAt = 0.0
                for i in 0..<24 {
                    if i == 12 {
                        let termination = await herald.kill()
                        killedAt = Date().timeIntervalSince1970
                        print("webhooks: SIGKILL after \(i) messages: \(String(describing: termination)); "
                              + "\(receiver.requests().count) requests received so far")
                        try await herald.restart()
                        _ = try await herald.httpPort()
                    }
                    let email = "r\(i)@d\(i % 3).\(Self.domain)"
                    let o = try await api.expect(202, "POST", "/v1/messages", [
                        "from": "app@sender.test", "subject": "webhook test \(i)", "text": "hello \(i)",
                        "recipients": [["email": email]],
                    ])
                    let messages = try #require(o["messages"] as? [[String: Any]])
                    queued.append((try #require(messages.first?["id"] as? String), email))
                }
                let test = try await api.expect(202, "POST", "/v1/webhooks/\(ids["/ok"]!)/test")
                let testEvent = try #require(test["event_id"] as? String)

                // Every (queue id, recipient) must reach /flaky as accepted and delivered, and
                // /slow as delivered, each answered 200 with a valid signature.
                func missing() -> [String] {
                    let taken = receiver.requests().filter { $0.answer == "200" && $0.valid }
                    var have = Set<String>()
                    for r in taken {
                        have.insert("\(r.path) \(r.type) \(r.data["queue_id"] as? String ?? "") \(r.data["recipient"] as? String ?? "")")
                    }
                    var wanted: [String] = []
                    for q in queued {
                        wanted += ["/flaky accepted \(q.id) \(q.email)", "/flaky delivered \(q.id) \(q.email)",
                                   "/slow delivered \(q.id) \(q.email)"]
                    }
                    let testArrived = taken.contains { $0.path == "/ok" && $0.type == "test" && $0.eventID == testEvent }
                    return wanted.filter { !have.contains($0) } + (testArrived ? [] : ["/ok test \(testEvent)"])
                }
                let deadline = Date().addingTimeInterval(120)
                while !missing().isEmpty && Date() < deadline { try await Task.sleep(for: .milliseconds(250)) }
                let requests = receiver.requests()
                let left = missing()
                print("webhooks: \(requests.count) requests; by path and answer: "
                      + "\(Dictionary(grouping: requests, by: { "\($0.path) \($0.answer)" }).mapValues(\.count))")
                #expect(left.isEmpty, "events that never arrived: \(left.prefix(20))\n\(herald.diagnostics())")
                // Every request Herald made was signed correctly. A request cut off by the
                // SIGKILL (its head sent, its body not) cannot be checked; the receiver records
                // it as truncated, and only the kill may cause one.
                let truncated = requests.filter { $0.answer == "truncated" }
                #expect(truncated.allSatisfy { $0.at <= killedAt + 1 }, "\(truncated.map { ($0.path, $0.eventID, $0.at, killedAt) })")
                let invalid = requests.filter { !$0.valid && $0.answer != "truncated" }
                #expect(invalid.isEmpty, "\(invalid.prefix(3).map(\.path))")
                // The receiver's failures and time-outs happened and were retried.
                #expect(requests.contains { $0.path == "/flaky" && $0.answer == "500" })
                #expect(requests.contains { $0.path == "/slow" && $0.answer == "late" })
                // One event id per event: the retries of an event carry its id.
                let flakyDelivered = Set(requests.filter { $0.path == "/flaky" && $0.type == "delivered" && $0.answer == "200" }
                    .map { "\($0.data["queue_id"] ?? "")" })
                #expect(flakyDelivered.count == queued.count)

                // The deliveries list shows what happened: /flaky's took three attempts each
                // (two answered 500); one whose attempt was in flight at the SIGKILL shows one
                // fewer, since the killed process could not record it.
                // (The answer comes before Herald records it: wait for the records.)
                var rows: [[String: Any]] = []
                var delivered: [[String: Any]] = []
                let recorded = Date().addingTimeInterval(15)
                repeat {
                    let page = try await api.expect(200, "GET", "/v1/webhooks/\(ids["/flaky"]!)/deliveries?limit=1000")
                    rows = page["data"] as? [[String: Any]] ?? []
                    delivered = rows.filter { $0["state"] as? String == "delivered" }
                    if delivered.count < 2 * queued.count { try await Task.sleep(for: .milliseconds(200)) }
                } while delivered.count < 2 * queued.count && Date() < recorded
                #expect(rows.count == 2 * queued.count)
                #expect(delivered.count == 2 * queued.count)
                #expect(delivered.allSatisfy { ($0["attempts"] as? Int ?? 0) >= 2 && $0["response_status"] as? Int == 200 })
                #expect(delivered.filter { $0["attempts"] as? Int == 3 }.count >= 2 * queued.count - 4)
                // /fail is retried and stays pending with its last status (disabling takes days).
                let failing = try await api.expect(200, "GET", "/v1/webhooks/\(ids["/fail"]!)/deliveries?limit=5")
                let failRows = failing["data"] as? [[String: Any]] ?? []
                #expect(!failRows.isEmpty && failRows.allSatisfy {
                    $0["state"] as? String == "pending" && $0["response_status"] as? Int == 500 })
                let failEndpoint = try await api.expect(200, "GET", "/v1/webhooks/\(ids["/fail"]!)")
                #expect(failEndpoint["failing_since"] is String)
                // The restarted Herald put back what the kill may have lost from its buffer.
                let log = (try? String(contentsOfFile: herald.logPath, encoding: .utf8)) ?? ""
                #expect(log.contains("webhook events replayed"))
                // The outbox's depth is on /metrics.
                let metrics = try await CampaignIT.http("GET", "http://127.0.0.1:\(httpPort)/metrics")
                #expect(metrics.text.contains("herald_webhook_backlog "))
            }
            await receiver.stop()
            await sink.stop()
        }
    }
}
