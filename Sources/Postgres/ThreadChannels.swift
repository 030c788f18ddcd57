import Foundation
import NIOCore

// Two bounded hand-over queues between async code and a connection thread. The
// connection threads block (they run blocking libpq calls anyway); async code suspends
// on a continuation and never blocks a thread of the cooperative pool. Each side is
// held back when the other falls behind, so memory stays bounded however large the
// data: a million-row import or result flows through a few buffers at a time.

/// Async producer → blocking consumer on a connection thread (COPY data, CSV chunks).
final class ThreadInbox<Element: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items = CircularBuffer<Element>()
    private let capacity: Int
    private var finished = false
    private var failure: Error?
    private var consumerGone = false
    private var producerWaiter: CheckedContinuation<Void, Error>?

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Queues `element`; suspends while the queue is full. Throws once the consumer has
    /// stopped (its own error is what the caller should report).
    func send(_ element: Element) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            condition.lock()
            if consumerGone {
                condition.unlock()
                continuation.resume(throwing: PostgresError(.aborted, message: "the connection stopped reading"))
                return
            }
            items.append(element)
            condition.signal()
            if items.count < capacity {
                condition.unlock()
                continuation.resume()
            } else {
                producerWaiter = continuation
                condition.unlock()
            }
        }
    }

    /// No more elements; `error` makes the consumer's next `receive()` throw it.
    func finish(_ error: Error? = nil) {
        condition.withLock {
            finished = true
            failure = error
            condition.signal()
        }
    }

    /// The next element (blocking the calling thread), nil at the end.
    func receive() throws -> Element? {
        condition.lock()
        while items.isEmpty && !finished { condition.wait() }
        if !items.isEmpty {
            let element = items.removeFirst()
            var waiter: CheckedContinuation<Void, Error>?
            if items.count < capacity {
                waiter = producerWaiter
                producerWaiter = nil
            }
            condition.unlock()
            waiter?.resume()
            return element
        }
        let failure = self.failure
        condition.unlock()
        if let failure { throw failure }
        return nil
    }

    /// The consumer will not read any more: a waiting or later `send` throws.
    func consumerStopped() {
        condition.lock()
        consumerGone = true
        items.removeAll()
        let waiter = producerWaiter
        producerWaiter = nil
        condition.unlock()
        waiter?.resume(throwing: PostgresError(.aborted, message: "the connection stopped reading"))
    }
}

/// Blocking producer on a connection thread → async consumer (streamed rows), in batches.
final class ThreadOutbox<Element: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var batches = CircularBuffer<[Element]>()
    private var buffered = 0
    private let capacity: Int
    private var finished = false
    private var failure: Error?
    private var consumerGone = false
    private var consumerWaiter: CheckedContinuation<[Element]?, Error>?

    /// `capacity`: how many elements may wait for the consumer before the producer blocks.
    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Hands a batch over; blocks while `capacity` elements wait. False once the
    /// consumer has gone away (the producer should stop).
    func send(_ batch: [Element]) -> Bool {
        condition.lock()
        if consumerGone {
            condition.unlock()
            return false
        }
        if let waiter = consumerWaiter {
            consumerWaiter = nil
            condition.unlock()
            waiter.resume(returning: batch)
            return true
        }
        batches.append(batch)
        buffered += batch.count
        while buffered >= capacity && !consumerGone { condition.wait() }
        let gone = consumerGone
        condition.unlock()
        return !gone
    }

    /// The end (or the producer's failure).
    func finish(_ error: Error? = nil) {
        condition.lock()
        finished = true
        failure = error
        let waiter = consumerWaiter
        consumerWaiter = nil
        condition.unlock()
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
        }
    }

    /// The next batch, nil at the end; throws the producer's error.
    func next() async throws -> [Element]? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[Element]?, Error>) in
                condition.lock()
                if !batches.isEmpty {
                    let batch = batches.removeFirst()
                    buffered -= batch.count
                    condition.signal()
                    condition.unlock()
                    continuation.resume(returning: batch)
                    return
                }
                if consumerGone {
                    condition.unlock()
                    continuation.resume(throwing: CancellationError())
                    return
                }
                if finished {
                    let failure = self.failure
                    condition.unlock()
                    if let failure { continuation.resume(throwing: failure) } else { continuation.resume(returning: nil) }
                    return
                }
                consumerWaiter = continuation
                condition.unlock()
            }
        } onCancel: {
            self.cancel()
        }
    }

    /// The consumer leaves: the producer's next `send` returns false.
    func cancel() {
        condition.lock()
        consumerGone = true
        batches.removeAll()
        buffered = 0
        condition.broadcast()
        let waiter = consumerWaiter
        consumerWaiter = nil
        condition.unlock()
        waiter?.resume(throwing: CancellationError())
    }
}
