import ArgumentParser
import Delivery
import Foundation
import Spool

struct QueueStats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats", abstract: "Counts by queue, by recipient state, by destination and by domain.",
        discussion: """
            A destination is what the queue manager delivers to: a [[route]]'s smart host (all the \
            domains it carries, shown as [host]:port (pattern)), or a recipient domain delivered by MX. \
            For each, the messages and recipients queued for it (pending or deferred, in queue/, not \
            on hold) and, while herald serve runs, its connection window and back-off.
            """)
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
        /// One destination queue: a route's smart host or a domain (by MX).
        struct Destination: Encodable {
            var destination: String
            /// The `[[route]]` pattern when the destination is a smart host.
            var route: String?
            /// Messages with at least one recipient waiting for this destination.
            var messages: Int
            var recipients: Int
            var pending: Int
            var deferred: Int
            var oldest: Date?
            /// The recipient domains queued for it.
            var domains: [String]
            /// From the running daemon: what it has queued, its window, backoff.
            var queued: Int?
            var window: Double?
            var active: Int?
            var backoffUntil: Date?
            var backoffReason: String?
        }
        var messages: [String: Int]
        var recipients: [String: Int]
        var destinations: [Destination]
        var domains: [Domain]
    }

    /// The queue manager's destination for a recipient domain: the route's smart host
    /// (`[host]:port (pattern)`) unless the domain has a `[[throttle]]` of its own, else the
    /// domain (as `DeliveryScheduler.destination(ofDomain:)` keys its queues).
    static func destination(of domain: String, _ config: DeliveryConfiguration) -> (key: String, route: String?) {
        let throttled = config.throttles.contains { t in
            if case .domain(let p) = t.target { return p.matches(domain) }
            return false
        }
        if !throttled, let route = config.route(for: domain), let host = route.host {
            return ("[\(host)]:\(route.port) (\(route.pattern))", route.pattern.text)
        }
        return (domain, nil)
    }

    func run() throws {
        let access = try SpoolAccess(options)
        let config = access.config
        var destinations: [String: Stats.Destination] = [:]
        var destinationOf: [String: (key: String, route: String?)] = [:]
        var messages = ["queue": 0, "hold": 0, "corrupt": 0]
        var states = ["pending": 0, "deferred": 0, "delivered": 0, "failed": 0]
        var domains: [String: Stats.Domain] = [:]
        for (q, env) in access.entries([.queue, .hold]) {
            messages[q.rawValue, default: 0] += 1
            var counted = Set<String>()
            for r in env.recipients {
                states[r.state.rawValue, default: 0] += 1
                guard r.state == .pending || r.state == .deferred else { continue }
                let domain = r.address.split(separator: "@").last.map { $0.lowercased() } ?? ""
                var d = domains[domain] ?? .init(domain: domain, recipients: 0, pending: 0, deferred: 0, oldest: nil)
                d.recipients += 1
                if r.state == .pending { d.pending += 1 } else { d.deferred += 1 }
                if d.oldest.map({ env.arrival < $0 }) ?? true { d.oldest = env.arrival }
                domains[domain] = d
                // Held messages wait for the postmaster, not for a destination.
                guard q == .queue else { continue }
                let target = destinationOf[domain] ?? Self.destination(of: domain, config.delivery)
                destinationOf[domain] = target
                var t = destinations[target.key] ?? .init(destination: target.key, route: target.route, messages: 0,
                                                          recipients: 0, pending: 0, deferred: 0, oldest: nil, domains: [])
                if counted.insert(target.key).inserted { t.messages += 1 }
                t.recipients += 1
                if r.state == .pending { t.pending += 1 } else { t.deferred += 1 }
                if t.oldest.map({ env.arrival < $0 }) ?? true { t.oldest = env.arrival }
                if !t.domains.contains(domain) { t.domains.append(domain) }
                destinations[target.key] = t
            }
        }
        messages["corrupt"] = (try? access.spool.enumerate(.corrupt))?.count ?? 0
        // What only the daemon knows (windows, backoff), when it runs.
        if let state = access.daemonState() {
            for d in state.destinations {
                var t = destinations[d.domain] ?? .init(
                    destination: d.domain, route: nil, messages: 0, recipients: 0, pending: 0, deferred: 0,
                    oldest: nil, domains: [])
                t.queued = d.queued
                t.window = d.window
                t.active = d.active
                if let until = d.pausedUntil, until > Date() {
                    t.backoffUntil = until
                    t.backoffReason = d.reason
                }
                destinations[d.domain] = t
                // The domain table has always listed the daemon's queues by their key, route
                // keys (`[host]:port (pattern)`) included: scripts read their backoff there.
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
        let sorted = domains.values.sorted { ($0.recipients, $1.domain) > ($1.recipients, $0.domain) }
        let byDestination = destinations.values.sorted {
            ($0.messages, $0.recipients, $1.destination) > ($1.messages, $1.recipients, $0.destination)
        }
        if json {
            try printJSON(Stats(messages: messages, recipients: states, destinations: byDestination, domains: sorted))
            return
        }
        print("messages: \(messages["queue"]!) queued, \(messages["hold"]!) on hold, \(messages["corrupt"]!) corrupt")
        print("recipients: \(states["pending"]!) pending, \(states["deferred"]!) deferred, "
              + "\(states["delivered"]!) delivered, \(states["failed"]!) failed")
        if !byDestination.isEmpty {
            print("")
            print("DESTINATION".padding(toLength: 48, withPad: " ", startingAt: 0) + "MSGS".leftPadded(8)
                  + "RCPTS".leftPadded(8) + "DEFERRED".leftPadded(10) + "  OLDEST                 STATE")
            for d in byDestination {
                print(d.destination.padding(toLength: 48, withPad: " ", startingAt: 0) + String(d.messages).leftPadded(8)
                      + String(d.recipients).leftPadded(8) + String(d.deferred).leftPadded(10) + "  "
                      + (d.oldest.map(iso8601) ?? "-").padding(toLength: 22, withPad: " ", startingAt: 0) + " "
                      + Self.stateText(d.backoffUntil, d.backoffReason, d.window, d.active))
                if d.route != nil { print("    " + d.domains.sorted().joined(separator: ", ")) }
            }
        }
        if !sorted.isEmpty {
            print("")
            print("DOMAIN".padding(toLength: 40, withPad: " ", startingAt: 0) + "RCPTS".leftPadded(8)
                  + "PENDING".leftPadded(9) + "DEFERRED".leftPadded(10) + "  OLDEST                 STATE")
            for d in sorted {
                print(d.domain.padding(toLength: 40, withPad: " ", startingAt: 0) + String(d.recipients).leftPadded(8)
                      + String(d.pending).leftPadded(9) + String(d.deferred).leftPadded(10) + "  "
                      + (d.oldest.map(iso8601) ?? "-").padding(toLength: 22, withPad: " ", startingAt: 0) + " "
                      + Self.stateText(d.backoffUntil, d.backoffReason, d.window, d.active))
            }
        }
    }

    static func stateText(_ backoffUntil: Date?, _ reason: String?, _ window: Double?, _ active: Int?) -> String {
        backoffUntil.map { "backoff until \(iso8601($0)): \(reason ?? "")" }
            ?? window.map { "window \(Int($0)), \(active ?? 0) active" } ?? "-"
    }
}
