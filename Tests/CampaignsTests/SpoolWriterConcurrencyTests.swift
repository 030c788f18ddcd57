import Synchronization
import Testing

@testable import Campaigns

/// ``SpoolWriter/concurrently(count:limit:isolation:start:received:)``: the bounded
/// commit loop shared by campaign expansion and `POST /v1/messages`.
@Suite("Bounded concurrent commits")
struct SpoolWriterConcurrencyTests {
    struct Refused: Error, Equatable { var index: Int }

    /// Jobs in flight now and at most.
    final class Gauge: Sendable {
        let state = Mutex((now: 0, most: 0))
        func enter() { state.withLock { $0.now += 1; $0.most = max($0.most, $0.now) } }
        func leave() { state.withLock { $0.now -= 1 } }
        var most: Int { state.withLock { $0.most } }
    }

    @Test func everyJobRunsInOrderAtMostLimitAtOnce() async {
        let gauge = Gauge()
        var started: [Int] = []
        var values = [Int?](repeating: nil, count: 100)
        let failure = await SpoolWriter.concurrently(count: 100, limit: 7) { index in
            started.append(index)
            return {
                gauge.enter()
                defer { gauge.leave() }
                try await Task.sleep(for: .milliseconds(index % 3))
                return index * 10
            }
        } received: { index, value in
            values[index] = value
            return true
        }
        #expect(failure == nil)
        #expect(started == Array(0..<100))
        #expect(values == (0..<100).map { $0 * 10 })
        #expect(gauge.most <= 7 && gauge.most > 1)
    }

    @Test func aFailureStopsNewJobsButRunningOnesAreReceived() async {
        var started: [Int] = []
        var received: [Int] = []
        let failure = await SpoolWriter.concurrently(count: 50, limit: 4) { index in
            started.append(index)
            return {
                if index == 5 { throw Refused(index: index) }
                if index == 6 { throw Refused(index: index) }
                // Those started with the failing ones finish after them.
                if index > 5 { try await Task.sleep(for: .milliseconds(50)) }
                return index
            }
        } received: { index, _ in
            received.append(index)
            return true
        }
        #expect(failure as? Refused == Refused(index: 5) || failure as? Refused == Refused(index: 6))
        #expect(started.count < 50 && started == Array(0..<started.count))
        #expect(Set(received) == Set(started).subtracting([5, 6]))
    }

    @Test func answeringFalseStopsNewJobs() async {
        var started = 0
        var received = 0
        let failure = await SpoolWriter.concurrently(count: 1000, limit: 1) { _ in
            started += 1
            return { 1 }
        } received: { _, _ in
            received += 1
            return received < 3
        }
        #expect(failure == nil)
        #expect(started == 3 && received == 3)
    }
}
