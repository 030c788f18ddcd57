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
        struct Domain: Encodable, QueuedCounts {
            var domain: String
            var recipients = 0
            var pending = 0
            var deferred = 0
            var oldest: Date?
            /// From the running daemon: its concurrency window and backoff, if any.
            var window: Double?
            var active: Int?
            var backoffUntil: Date?
            var backoffReason: String?
        }
        /// One destination queue: a route's smart host or a domain (by MX).
        struct Destination: Encodable, QueuedCounts {
            var destination: String
            /// The `[[route]]` pattern when the destination is a smart host.
            var route: String?
            /// Messages with at least one recipient waiting for this destination.
            var messages = 0
            var recipients = 0
            var pending = 0
            var deferred = 0
            var oldest: Date?
            /// The recipient domains queued for it.
            var domains: [String] = []
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
                domains[domain, default: .init(domain: domain)].count(r.state, arrival: env.arrival)
                // Held messages wait for the postmaster, not for a destination.
                guard q == .queue else { continue }
                let target = destinationOf[domain] ?? Self.destination(of: domain, config.delivery)
                destinationOf[domain] = target
                var t = destinations[target.key] ?? .init(destination: target.key, route: target.route)
                if counted.insert(target.key).inserted { t.messages += 1 }
                t.count(r.state, arrival: env.arrival)
                if !t.domains.contains(domain) { t.domains.append(domain) }
                destinations[target.key] = t
            }
        }
        messages["corrupt"] = (try? access.spool.enumerate(.corrupt))?.count ?? 0
        // What only the daemon knows (windows, backoff), when it runs.
        if let state = access.daemonState() {
            let now = Date()
            for d in state.destinations {
                var t = destinations[d.domain] ?? .init(destination: d.domain)
                t.queued = d.queued
                t.take(d, now: now)
                destinations[d.domain] = t
                // The domain table has always listed the daemon's queues by their key, route
                // keys (`[host]:port (pattern)`) included: scripts read their backoff there.
                domains[d.domain, default: .init(domain: d.domain)].take(d, now: now)
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
                      + d.oldestAndState)
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
                      + d.oldestAndState)
            }
        }
    }
}

/// What a row of `queue stats` counts, for a destination and for a domain alike, and
/// what the running daemon adds to it.
protocol QueuedCounts {
    var recipients: Int { get set }
    var pending: Int { get set }
    var deferred: Int { get set }
    var oldest: Date? { get set }
    var window: Double? { get set }
    var active: Int? { get set }
    var backoffUntil: Date? { get set }
    var backoffReason: String? { get set }
}

extension QueuedCounts {
    /// Counts one waiting (pending or deferred) recipient of a message that arrived at `arrival`.
    mutating func count(_ state: RecipientState, arrival: Date) {
        recipients += 1
        if state == .pending { pending += 1 } else { deferred += 1 }
        if oldest.map({ arrival < $0 }) ?? true { oldest = arrival }
    }

    /// The daemon's window for the queue and its back-off while that lasts.
    mutating func take(_ daemon: QueueManager.DestinationState, now: Date) {
        window = daemon.window
        active = daemon.active
        if let until = daemon.backoffUntil(after: now) {
            backoffUntil = until
            backoffReason = daemon.reason
        }
    }

    /// The OLDEST and STATE columns of the text tables.
    var oldestAndState: String {
        let state = backoffUntil.map { "backoff until \(iso8601($0)): \(backoffReason ?? "")" }
            ?? window.map { "window \(Int($0)), \(active ?? 0) active" } ?? "-"
        return (oldest.map(iso8601) ?? "-").padding(toLength: 22, withPad: " ", startingAt: 0) + " " + state
    }
}
