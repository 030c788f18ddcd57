@testable import Delivery
import Foundation
import SMTPClient
import SMTPCore
import Spool
import Testing

/// The small pure parts of delivery: throttle-reply classification, the destination
/// queue's slow start and backoff, the delivery log's format and rotation.
@Suite struct ThrottleReplyTests {
    @Test("throttling replies", arguments: [
        "421 4.7.0 rate limit exceeded, try again later",
        "421 Service not available, closing transmission channel",
        "451 4.7.1 Please try again later",
        "450 4.7.0 temporarily rate limited",
        "452 4.7.28 too many recipients from this IP",
        "451 Rate limit reached",
        "450 Too many connections from your IP",
        "451 4.3.0 Throttled: too many messages",
        "452 4.5.3 Too many messages, slow down",
    ])
    func throttle(_ line: String) {
        #expect(OutboundDeliverer.isThrottleReply(Self.reply(line)), "\(line)")
    }

    @Test("not throttling replies", arguments: [
        "450 4.2.1 mailbox temporarily unavailable",
        "451 4.3.0 temporary content failure",
        "452 4.2.2 mailbox full",
        "550 5.7.1 rate limit exceeded",     // permanent: a 5xx is never a throttle
        "554 5.7.1 too many connections",
        "250 2.0.0 OK",
        "550 5.1.1 no such user here",
        "451 4.4.1 connection refused",
    ])
    func notThrottle(_ line: String) {
        #expect(!OutboundDeliverer.isThrottleReply(Self.reply(line)), "\(line)")
    }

    static func reply(_ line: String) -> SMTPReply {
        let code = Int(line.prefix(3))!
        let rest = line.dropFirst(4)
        let first = rest.split(separator: " ", maxSplits: 1)
        if let e = first.first.flatMap({ EnhancedStatusCode(parsing: $0) }) {
            return SMTPReply(code, e, first.count > 1 ? String(first[1]) : "")
        }
        return SMTPReply(code, nil, String(rest))
    }
}

@Suite struct DestinationQueueTests {
    @Test func slowStartGrowsByOnePerSuccessUpToTheLimit() {
        var q = DestinationQueue(domain: "d.test", initialWindow: 2, limit: 4)
        #expect(q.window == 2)
        q.active = 1
        #expect(q.canStart)
        q.active = 2
        #expect(!q.canStart)
        q.succeeded()
        #expect(q.window == 3)
        #expect(q.canStart)
        q.succeeded(); q.succeeded(); q.succeeded()
        #expect(q.window == 4)
        // An initial window above the limit is clamped.
        #expect(DestinationQueue(domain: "d", initialWindow: 50, limit: 3).window == 3)
    }

    @Test func throttleHalvesTheWindowAndPauses() {
        var q = DestinationQueue(domain: "d.test", initialWindow: 8, limit: 20)
        let until = Date().addingTimeInterval(60)
        q.throttled(until: until, reason: "421 4.7.0 slow down")
        #expect(q.window == 4)
        #expect(q.pausedUntil == until)
        #expect(q.pauseReason?.hasPrefix("throttled") == true)
        q.throttled(until: until, reason: "again")
        q.throttled(until: until, reason: "again")
        q.throttled(until: until, reason: "again")
        #expect(q.window == 1, "never below one")
        q.active = 0
        #expect(q.canStart, "a window of one still lets one delivery through")
    }

    @Test func unreachablePausesWithoutShrinking() {
        var q = DestinationQueue(domain: "d.test", initialWindow: 5, limit: 20)
        q.unreachable(until: Date(), reason: "connection refused")
        #expect(q.window == 5)
        #expect(q.pauseReason?.hasPrefix("unreachable") == true)
    }

    @Test func fifoAcrossCompaction() {
        var q = DestinationQueue(domain: "d.test", initialWindow: 1, limit: 1)
        let ids = (0..<3000).map { _ in QueueID.generate() }
        for id in ids.prefix(2000) { q.push(id) }
        var out: [QueueID] = []
        for _ in 0..<1500 { out.append(q.pop()!) }
        for id in ids.dropFirst(2000) { q.push(id) }
        #expect(q.count == 1500)
        while let id = q.pop() { out.append(id) }
        #expect(out == ids)
        #expect(q.isEmpty)
        #expect(q.pop() == nil)
    }
}

@Suite struct DeliveryLogTests {
    static func entry(_ n: Int, result: String = "delivered") -> DeliveryLog.Entry {
        .init(time: Date(timeIntervalSince1970: 1_790_000_000.25), queueId: "Q\(n)", recipient: "r\(n)@d.test",
              domain: "d.test", mxHost: "mx.d.test", ip: "127.0.0.1", tls: true, result: result, code: 250,
              enhanced: "2.0.0", reply: "250 2.0.0 OK", attempt: 1,
              nextAttempt: result == "deferred" ? Date(timeIntervalSince1970: 1_790_000_300) : nil,
              tenant: "t1", campaign: nil, durationMs: 12)
    }

    @Test func oneJSONObjectPerLineWithSnakeCaseKeys() throws {
        let dir = NSTemporaryDirectory() + "herald-dlog-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = DeliveryLog(path: dir + "/sub/delivery.jsonl", maxBytes: 1 << 20)
        log.write(Self.entry(1))
        log.write(Self.entry(2, result: "deferred"))
        let text = try String(contentsOfFile: dir + "/sub/delivery.jsonl", encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(text.hasSuffix("\n"))
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["queue_id"] as? String == "Q1")
        #expect(first["recipient"] as? String == "r1@d.test")
        #expect(first["mx_host"] as? String == "mx.d.test")
        #expect(first["result"] as? String == "delivered")
        #expect(first["code"] as? Int == 250)
        #expect(first["tls"] as? Bool == true)
        #expect(first["time"] as? String == "2026-09-21T14:13:20.250Z")
        #expect(first["duration_ms"] as? Int == 12)
        let second = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect(second["next_attempt"] as? String == "2026-09-21T14:18:20.000Z")
    }

    @Test func rotatesBySizeKeepingFiveGenerations() throws {
        let dir = NSTemporaryDirectory() + "herald-dlog-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/delivery.jsonl"
        let log = DeliveryLog(path: path, maxBytes: 2000)
        for n in 0..<400 { log.write(Self.entry(n)) }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files == ["delivery.jsonl", "delivery.jsonl.1", "delivery.jsonl.2", "delivery.jsonl.3",
                          "delivery.jsonl.4", "delivery.jsonl.5"])
        var seen: [Int] = []
        for f in ["delivery.jsonl.5", "delivery.jsonl.4", "delivery.jsonl.3", "delivery.jsonl.2", "delivery.jsonl.1",
                  "delivery.jsonl"] {
            let data = try #require(FileManager.default.contents(atPath: dir + "/" + f))
            #expect(data.count <= 2000, "\(f) is \(data.count) bytes")
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                seen.append(Int((obj["queue_id"] as! String).dropFirst())!)
            }
        }
        // The newest lines survive, in order, without gaps.
        #expect(seen == Array((400 - seen.count)..<400))
        // A reopened log appends rather than truncating: the lines already there stay,
        // followed by the new one (in the current file, or in a fresh one after rotation).
        let again = DeliveryLog(path: path, maxBytes: 2000)
        let before = FileManager.default.contents(atPath: path) ?? Data()
        again.write(Self.entry(400))
        let after = FileManager.default.contents(atPath: path) ?? Data()
        let lastLine = try #require(String(decoding: after, as: UTF8.self).split(separator: "\n").last)
        #expect(lastLine.contains("\"Q400\""), "\(lastLine)")
        if after.count > before.count {
            #expect(after.prefix(before.count) == before, "the earlier lines are kept as they were")
        } else {
            let rotated = FileManager.default.contents(atPath: path + ".1") ?? Data()
            #expect(rotated == before, "the full file moved to .1 unchanged")
        }
    }

    @Test func noPathMeansNoLog() throws {
        let log = DeliveryLog(path: nil, maxBytes: 100)
        let cwd = FileManager.default.currentDirectoryPath
        let before = try FileManager.default.contentsOfDirectory(atPath: cwd).filter { $0.hasPrefix("delivery") }
        log.write(Self.entry(1))
        #expect(try FileManager.default.contentsOfDirectory(atPath: cwd).filter { $0.hasPrefix("delivery") } == before)
    }
}
