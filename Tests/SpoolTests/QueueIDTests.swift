import Foundation
import Testing

@testable import Spool

@Suite("QueueID")
struct QueueIDTests {
    @Test("100k ids made in a row are unique, well formed and strictly increasing")
    func orderingAndUniqueness() {
        var previous: QueueID?
        var seen = Set<QueueID>()
        seen.reserveCapacity(100_000)
        for _ in 0..<100_000 {
            let id = QueueID.generate()
            #expect(id.rawValue.utf8.count == 20)
            if let previous {
                #expect(previous < id, "\(previous) then \(id)")
            }
            #expect(QueueID(id.rawValue) == id)
            seen.insert(id)
            previous = id
        }
        #expect(seen.count == 100_000)
    }

    @Test("ids made concurrently on many threads are unique")
    func concurrentUniqueness() async {
        let perTask = 10_000
        let all = await withTaskGroup(of: [QueueID].self) { group in
            for _ in 0..<8 {
                group.addTask { (0..<perTask).map { _ in QueueID.generate() } }
            }
            var all: [QueueID] = []
            for await ids in group { all += ids }
            return all
        }
        #expect(all.count == 8 * perTask)
        #expect(Set(all).count == all.count)
    }

    @Test("the time prefix sorts by arrival and carries the timestamp")
    func timePrefix() {
        let early = Date(timeIntervalSince1970: 1_600_000_000.123456)
        let late = Date(timeIntervalSince1970: 1_600_000_001)
        let a = QueueID.generate(now: early)
        let b = QueueID.generate(now: late)
        #expect(a < b)
        #expect(abs(a.timestamp.timeIntervalSince(early)) < 0.000_002)
        #expect(a.rawValue.prefix(13) == "5AF3107A5E240")  // 1600000000123456 µs in hex
        #expect([b, a].sorted() == [a, b])
    }

    @Test("shard is two lowercase hex digits from a hash of the whole id")
    func shardShape() {
        var shards = Set<String>()
        var sameTimeShards = Set<String>()
        let instant = Date(timeIntervalSince1970: 1_500_000_000)
        for index in 0..<20_000 {
            let id = QueueID.generate()
            let shard = id.shard
            #expect(shard.count == 2)
            #expect(shard.allSatisfy { "0123456789abcdef".contains($0) })
            #expect(shard == id.shard)  // stable
            shards.insert(shard)
            if index < 200 {
                // Same time prefix (an old explicit date): the random part still spreads them.
                sameTimeShards.insert(QueueID.generate(now: instant).shard)
            }
        }
        #expect(shards.count == 256)
        #expect(sameTimeShards.count > 100)
    }

    /// Existing spools were laid out with this hash: a spool written by an earlier
    /// version must find its files in the same directories.
    @Test("the shard is FNV-1a of the id's text, folded to a byte; ids spelled from file names parse the same")
    func shardIsTheSpoolLayout() {
        #expect(QueueID("063A1F2B4C5D6K7QZ2M0")!.shard == "f4")
        for _ in 0..<2000 {
            let id = QueueID.generate()
            var hash: UInt32 = 0x811C_9DC5
            for byte in id.rawValue.utf8 { hash = (hash ^ UInt32(byte)) &* 0x0100_0193 }
            let folded = (hash ^ (hash >> 8) ^ (hash >> 16) ^ (hash >> 24)) & 0xFF
            #expect(id.shard == String(format: "%02x", folded))
            #expect(Spool.parseFileName(id.rawValue + ".env")! == (id, .envelope))
            #expect(Spool.parseFileName(id.rawValue + ".msg")! == (id, .message))
            #expect(id.withFileName(".env") { String(cString: $0) } == id.rawValue + ".env")
            #expect(QueueID.shardNames[QueueID.shardNumber(id)] == id.shard)
        }
        #expect(Spool.parseFileName("063A1F2B4C5D6K7QZ2M0.tmp") == nil)
        #expect(Spool.parseFileName("063A1F2B4C5D6K7QZ2M0env") == nil)
        #expect(Spool.parseFileName("063A1F2B4C5D6K7QZ2M.env") == nil)
    }

    @Test(
        "malformed strings are rejected",
        arguments: [
            "", "063A1F2B4C5D6K7QZ2M", "063A1F2B4C5D6K7QZ2M00", "063a1f2b4c5d6K7QZ2M0", "063A1F2B4C5DGK7QZ2M0",
            "063A1F2B4C5D6K7QZ2MI", "063A1F2B4C5D6K7QZ2MU", "../../etc/passwd0000", "063A1F2B4C5D6K7QZ2M/",
            "063A1F2B4C5D6k7qz2m0", "063A1F2B4C5D6K7QZ2M\u{0}",
        ])
    func rejectsMalformed(_ string: String) {
        #expect(QueueID(string) == nil)
    }

    @Test("accepts the generated shape")
    func acceptsValid() {
        #expect(QueueID("063A1F2B4C5D6K7QZ2M0")?.rawValue == "063A1F2B4C5D6K7QZ2M0")
        #expect(QueueID("FFFFFFFFFFFFFZZZZZZZ") != nil)
    }

    @Test("Codable as a plain JSON string; a bad string fails to decode")
    func codable() throws {
        let id = QueueID.generate()
        let data = try JSONEncoder().encode([id])
        #expect(String(decoding: data, as: UTF8.self) == "[\"\(id.rawValue)\"]")
        #expect(try JSONDecoder().decode([QueueID].self, from: data) == [id])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([QueueID].self, from: Data("[\"nope\"]".utf8))
        }
        #expect(id.description == id.rawValue)
    }
}

@Suite("CRC-32C")
struct CRC32CTests {
    @Test("check value from RFC 3720")
    func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)  // RFC 3720 B.4
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    }

    @Test("incremental updates equal one pass, at every split point")
    func incremental() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<257).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let whole = CRC32C.checksum(bytes)
        for split in 0...bytes.count {
            var crc = CRC32C()
            crc.update(Array(bytes[..<split]))
            crc.update(Array(bytes[split...]))
            #expect(crc.value == whole)
        }
    }

    @Test("envelope spelling")
    func spelling() {
        #expect(CRC32C.envelopeString(Array("123456789".utf8)) == "crc32c:e3069283")
        #expect(CRC32C.envelopeString([]) == "crc32c:00000000")
    }
}
