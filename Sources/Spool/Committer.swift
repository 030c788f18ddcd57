import Foundation

/// A fixed-size set of dedicated threads that run blocking spool work (write, fsync,
/// rename) so that callers in async code never block the cooperative pool or a NIO
/// event loop while a disk flush is under way.
///
/// Group commit comes from concurrency, not from batching: with N threads, up to N
/// commits are inside fsync at once, and the file system folds their waits into shared
/// journal commits (ext4/jbd2 and XFS both do this). Each caller still resumes only
/// after its own files and directory entry are durable. See ``Spool`` for the
/// measurements that chose this over an explicit batching committer.
///
/// Threads are started on demand (a CLI that never stores starts none) and kept
/// until the pool is shut down; jobs are taken in FIFO order.
final class Committer: @unchecked Sendable {
    typealias Job = @Sendable () -> Void

    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
    private var threads = 0
    private var idle = 0
    private var shuttingDown = false
    private let maximumThreads: Int
    private let name: String

    init(maximumThreads: Int, name: String) {
        precondition(maximumThreads > 0, "a committer needs at least one thread")
        self.maximumThreads = maximumThreads
        self.name = name
    }

    /// Number of threads started so far (for tests and diagnostics).
    var threadCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return threads
    }

    func submit(_ job: @escaping Job) {
        condition.lock()
        precondition(!shuttingDown, "Internal inconsistency: job submitted to a stopped spool committer")
        jobs.append(job)
        let waiting = jobs.count - head
        let startThread = waiting > idle && threads < maximumThreads
        if startThread {
            threads += 1
        }
        condition.signal()
        condition.unlock()
        if startThread {
            let thread = Thread { [self] in self.work() }
            thread.name = "\(name)-\(threadCount)"
            thread.stackSize = 512 * 1024
            thread.start()
        }
    }

    /// Lets the threads finish queued jobs and exit. Called from `Spool.deinit`, when no
    /// job can be queued any more (every job holds a reference to its spool).
    func shutdown() {
        condition.lock()
        shuttingDown = true
        condition.broadcast()
        condition.unlock()
    }

    private func work() {
        condition.lock()
        while true {
            if head < jobs.count {
                let job = jobs[head]
                head += 1
                if head == jobs.count {
                    jobs.removeAll(keepingCapacity: true)
                    head = 0
                } else if head > 1024 && head * 2 > jobs.count {
                    jobs.removeFirst(head)
                    head = 0
                }
                condition.unlock()
                job()
                condition.lock()
                continue
            }
            if shuttingDown {
                threads -= 1
                condition.unlock()
                return
            }
            idle += 1
            condition.wait()
            idle -= 1
        }
    }
}
