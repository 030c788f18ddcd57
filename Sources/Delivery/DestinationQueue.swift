import Foundation
import Spool

/// The recipients of one destination domain that are ready to go, and how hard the
/// destination may be pushed right now.
///
/// Concurrency window with slow start: a queue starts with `initialWindow` deliveries in
/// flight and grows by one per success up to `limit`. A throttle reply halves the window
/// and pauses the queue (backoff mode); a session-level failure (no host reachable)
/// pauses it without touching the window, so queued mail waits instead of each message
/// knocking on a dead door.
struct DestinationQueue: Sendable {
    let domain: String
    /// Message ids with recipients for this domain, in arrival order.
    private var todo = IDQueue()
    var active = 0
    var window: Double
    var limit: Int
    var pausedUntil: Date?
    var pauseReason: String?
    var site: String?

    init(domain: String, initialWindow: Int, limit: Int) {
        self.domain = domain
        self.window = Double(min(initialWindow, limit))
        self.limit = limit
    }

    var isEmpty: Bool { todo.isEmpty }
    var count: Int { todo.count }

    mutating func push(_ id: QueueID) { todo.push(id) }

    func peek() -> QueueID? { todo.peek() }

    mutating func pop() -> QueueID? { todo.pop() }

    var canStart: Bool { active < max(1, Int(window)) }

    mutating func succeeded() {
        window = min(Double(limit), window + 1)
    }

    mutating func throttled(until: Date, reason: String) {
        window = max(1, (window / 2).rounded(.down))
        pausedUntil = until
        pauseReason = "throttled: \(reason)"
    }

    mutating func unreachable(until: Date, reason: String) {
        pausedUntil = until
        pauseReason = "unreachable: \(reason)"
    }
}

/// A FIFO of message ids with O(1) amortized push and pop (the consumed prefix is
/// dropped once it is more than half the storage).
struct IDQueue: Sendable {
    private var items: [QueueID] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }

    mutating func push(_ id: QueueID) { items.append(id) }

    func peek() -> QueueID? { head < items.count ? items[head] : nil }

    mutating func pop() -> QueueID? {
        guard head < items.count else { return nil }
        let id = items[head]
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return id
    }
}

/// Messages of one send-policy rate bucket (e.g. one campaign) waiting for a slot of
/// that rate before they join their destination queues, so that a slow campaign never
/// sits at the head of a destination queue in front of other mail.
struct PacedQueue: Sendable {
    var rate: Rate
    var todo = IDQueue()
}
