import ArgumentParser
import Delivery
import Foundation
import Spool

struct QueueStats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Counts by queue, by recipient state and by destination domain.")
    @OptionGroup var options: ConfigOption
    @Flag(help: "JSON output.") var json = false

    struct Stats: Encodable {
        struct Domain: Encodable {
            var domain: String
            var recipients: Int
            var pending: Int
            var deferred: Int
            var oldest: Date?
            /// From the running daemon: its concurrency window and backoff, if any.
            var window: Double?
            var active: Int?
            var backoffUntil: Date?
            var backoffReason: String?
        }
        var messages: [String: Int]
        var recipients: [String: Int]
        var domains: [Domain]
    }

    func run() throws {
        let access = try SpoolAccess(options)
        var messages = ["queue": 0, "hold": 0, "corrupt": 0]
        var states = ["pending": 0, "deferred": 0, "delivered": 0, "failed": 0]
        var domains: [String: Stats.Domain] = [:]
        for (q, env) in access.entries([.queue, .hold]) {
            messages[q.rawValue, default: 0] += 1
            for r in env.recipients {
                states[r.state.rawValue, default: 0] += 1
                guard r.state == .pending || r.state == .deferred else { continue }
                let domain = r.address.split(separator: "@").last.map { $0.lowercased() } ?? ""
                var d = domains[domain] ?? .init(domain: domain, recipients: 0, pending: 0, deferred: 0, oldest: nil)
                d.recipients += 1
                if r.state == .pending { d.pending += 1 } else { d.deferred += 1 }
                if d.oldest.map({ env.arrival < $0 }) ?? true { d.oldest = env.arrival }
                domains[domain] = d
            }
        }
        messages["corrupt"] = (try? access.spool.enumerate(.corrupt))?.count ?? 0
        // What only the daemon knows (windows, backoff), when it runs.
        let config = try options.load()
        if let logDir = config.logPath,
           let data = FileManager.default.contents(atPath: logDir + "/queue-state.json") {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            if let state = try? decoder.decode(QueueManager.State.self, from: data),
               Date().timeIntervalSince(state.time) < 30 {
                for d in state.destinations {
                    var entry = domains[d.domain] ?? .init(domain: d.domain, recipients: 0, pending: 0, deferred: 0, oldest: nil)
                    entry.window = d.window
                    entry.active = d.active
                    if let until = d.pausedUntil, until > Date() {
                        entry.backoffUntil = until
                        entry.backoffReason = d.reason
                    }
                    domains[d.domain] = entry
                }
            }
        }
        let sorted = domains.values.sorted { ($0.recipients, $1.domain) > ($1.recipients, $0.domain) }
        if json {
            try printJSON(Stats(messages: messages, recipients: states, domains: sorted))
            return
        }
        print("messages: \(messages["queue"]!) queued, \(messages["hold"]!) on hold, \(messages["corrupt"]!) corrupt")
        print("recipients: \(states["pending"]!) pending, \(states["deferred"]!) deferred, "
              + "\(states["delivered"]!) delivered, \(states["failed"]!) failed")
        if !sorted.isEmpty {
            print("DOMAIN".padding(toLength: 40, withPad: " ", startingAt: 0) + "RCPTS".leftPadded(8)
                  + "PENDING".leftPadded(9) + "DEFERRED".leftPadded(10) + "  OLDEST                 STATE")
            for d in sorted {
                print(d.domain.padding(toLength: 40, withPad: " ", startingAt: 0) + String(d.recipients).leftPadded(8)
                      + String(d.pending).leftPadded(9) + String(d.deferred).leftPadded(10) + "  "
                      + (d.oldest.map(iso8601) ?? "-").padding(toLength: 22, withPad: " ", startingAt: 0) + " "
                      + (d.backoffUntil.map { "backoff until \(iso8601($0)): \(d.backoffReason ?? "")" }
                         ?? d.window.map { "window \(Int($0)), \(d.active ?? 0) active" } ?? "-"))
            }
        }
    }
}
