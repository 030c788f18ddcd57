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

/// A FIFO with O(1) amortized push and pop (the consumed prefix is dropped once it is
/// more than half the storage).
struct FIFO<Element: Sendable>: Sendable {
    private var items: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }

    mutating func push(_ item: Element) { items.append(item) }

    func peek() -> Element? { head < items.count ? items[head] : nil }

    mutating func pop() -> Element? {
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return item
    }
}

/// Message ids in arrival order.
typealias IDQueue = FIFO<QueueID>

/// Message ids by a due time, earliest first (a binary min-heap).
struct DueHeap: Sendable {
    private var items: [(due: Double, id: QueueID)] = []

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }

    func peek() -> (due: Double, id: QueueID)? { items.first }

    mutating func push(_ due: Double, _ id: QueueID) {
        items.append((due, id))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].due < items[parent].due else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (due: Double, id: QueueID)? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count && items[left].due < items[smallest].due { smallest = left }
            if right < items.count && items[right].due < items[smallest].due { smallest = right }
            guard smallest != parent else { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}

/// Messages of one send-policy rate bucket (e.g. one campaign) waiting for a slot of
/// that rate before they join their destination queues, so that a slow campaign never
/// sits at the head of a destination queue in front of other mail.
struct PacedQueue: Sendable {
    var rate: Rate
    var todo = IDQueue()
}
