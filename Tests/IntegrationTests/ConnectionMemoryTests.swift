import Foundation
import HeraldTestSupport
import Testing

/// Memory must not grow with the number of SMTP connections served: a gateway stays up
/// for weeks and most applications open one connection per message. Each finished
/// session once stayed alive in a reference cycle (its handler and the NIO context
/// holding each other), about 2 KB per connection.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(10)))
    struct ConnectionMemory {
        @Test("tens of thousands of one-message connections leave RSS where it was")
        func shortConnectionsDoNotGrowMemory() async throws {
            let options = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            try await HeraldProcess.with(options) { herald in
                let pid = try #require(herald.pid)
                // Warm-up: thread pools, allocator arenas, the spool's shard directories.
                try await PostfixSource.send(port: herald.port(), messages: 3_000)
                try await Task.sleep(for: .seconds(2))
                let before = try #require(ProcessMemory.residentBytes(pid))

                let connections = 30_000
                try await PostfixSource.send(port: herald.port(), messages: connections)
                try await Task.sleep(for: .seconds(2))
                let after = try #require(ProcessMemory.residentBytes(pid))
                let peak = ProcessMemory.peakResidentBytes(pid) ?? 0
                let growth = after - before
                print("""
                    connection memory: RSS \(ProcessMemory.mebibytes(before)) before \(connections) connections, \
                    \(ProcessMemory.mebibytes(after)) after (\(growth / connections) bytes per connection), \
                    peak \(ProcessMemory.mebibytes(peak))
                    """)
                // 2 KB per connection would be 57 MiB here; what may remain is allocator
                // slack and the spool's per-message bookkeeping.
                #expect(growth < 4 << 20, "RSS grew by \(ProcessMemory.mebibytes(growth)) over \(connections) connections")
                #expect(try await herald.queueStats().messages["queue"] == connections + 3_000)
            }
        }
    }
}
