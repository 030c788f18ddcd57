import ArgumentParser
import Foundation
import Spool

struct QueueList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List queued and held messages, oldest first, and why each waits.",
        discussion: """
            Under each message a line in parentheses says why it waits: held, campaign 7 paused, \
            window opens 09:00 Europe/Paris, retry at 2026-12-06T09:14:00Z, paced campaign 7 (10/m), \
            gmail.com backing off until … (while herald serve runs), ready or in delivery (the \
            "waiting" field with --json). Selectors narrow the list; the same selectors pick \
            messages for queue hold, release, delete and retry.
            """)
    @OptionGroup var options: ConfigOption
    @OptionGroup(title: "Selectors") var filter: MessageFilter
    @Flag(help: "JSON output.") var json = false
    @Flag(help: "Only the queue ids, one per line (for `herald queue delete -`).") var ids = false

    struct Row: Encodable {
        struct Recipient: Encodable {
            var address: String
            var state: String
            var attempts: Int
            var nextAttempt: Date?
            var lastReply: String?
        }
        var id: String
        var queue: String
        var arrival: Date
        var size: Int
        var sender: String
        var tenant: String?
        var campaign: String?
        /// Why the message waits (see ``WaitReason``), e.g. `retry at 2026-12-06T09:14:00Z`.
        var waiting: String
        /// The ``WaitReason/State`` behind `waiting`, e.g. `retry`.
        var waitingState: String
        var recipients: [Recipient]
    }

    func run() throws {
        let access = try SpoolAccess(options)
        let rows = access.select([.queue, .hold], filter).map { q, env, reason in
            Row(id: env.id.rawValue, queue: q.rawValue, arrival: env.arrival, size: env.size, sender: env.sender,
                tenant: env.tenant, campaign: env.campaign, waiting: reason.text, waitingState: reason.state.rawValue,
                recipients: env.recipients.map {
                    .init(address: $0.address, state: $0.state.rawValue, attempts: $0.attempts,
                          nextAttempt: $0.nextAttempt, lastReply: $0.lastReply)
                })
        }
        if ids {
            for row in rows { print(row.id) }
            return
        }
        if json {
            try printJSON(rows)
            return
        }
        if rows.isEmpty {
            print(filter.isActive ? "No message matches" : "Mail queue is empty")
            return
        }
        print("ID".padding(toLength: 21, withPad: " ", startingAt: 0) + " "
              + "ARRIVAL".padding(toLength: 20, withPad: " ", startingAt: 0) + " "
              + "SIZE".leftPadded(9) + "  SENDER")
        for row in rows {
            let mark = row.queue == "hold" ? "!" : " "
            print(row.id.padding(toLength: 20, withPad: " ", startingAt: 0) + mark + " " + iso8601(row.arrival) + " "
                  + String(row.size).leftPadded(9) + "  <" + row.sender + ">")
            print("  (" + row.waiting + ")")
            for r in row.recipients {
                var line = "      " + r.address + " (" + r.state
                if r.attempts > 0 { line += ", \(r.attempts) attempt(s)" }
                line += ")"
                print(line)
                if let reply = r.lastReply { print("        " + reply) }
            }
        }
        let held = rows.filter { $0.queue == "hold" }.count
        print("-- \(rows.count) message(s), \(rows.reduce(0) { $0 + $1.recipients.count }) recipient(s)"
              + (held > 0 ? ", \(held) on hold (!)" : ""))
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
