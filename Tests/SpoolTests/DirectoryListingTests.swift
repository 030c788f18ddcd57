import Foundation
import HeraldTestSupport
import Testing

@testable import Spool

/// `FileIO.list` reads each name inside the record `readdir` returned, bounded by its
/// `d_reclen`. Copying the whole `dirent` (256-octet name array included) read past the
/// end of the buffer for a record near its end: a crash on large spool directories, and
/// a heap-buffer-overflow under AddressSanitizer (`swift test --sanitize=address`).
@Suite struct DirectoryListingTests {
    @Test("every name of a large directory, of every length from 1 to 255 octets")
    func listsLargeDirectoryExactly() throws {
        let directory = try SpoolFixtures.makeTemporaryDirectory(prefix: "herald-listing")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Names of every length, many times over, so that records of all sizes end at
        // every position of the buffers glibc fills with getdents64.
        var expected = Set<String>()
        for index in 0..<6_000 {
            let length = 1 + (index * 7) % 255
            let stem = String(index, radix: 36)
            let name = String((stem + String(repeating: "x", count: 255)).prefix(max(length, stem.count)))
            expected.insert(name)
        }
        for name in expected {
            let fd = open(directory + "/" + name, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            try #require(fd >= 0, "create \(name): errno \(errno)")
            close(fd)
        }
        let listed = try FileIO.list(directory)
        #expect(listed.count == expected.count)
        #expect(Set(listed) == expected)
    }

    @Test("names that are not UTF-8 are listed, not dropped")
    func listsNonUTF8Names() throws {
        let directory = try SpoolFixtures.makeTemporaryDirectory(prefix: "herald-listing")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let raw: [UInt8] = Array((directory + "/caf").utf8) + [0xE9, 0]
        let fd = raw.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: raw.count) {
                open($0, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            }
        }
        try #require(fd >= 0)
        close(fd)
        let listed = try FileIO.list(directory)
        #expect(listed.count == 1)
        #expect(listed.first?.hasPrefix("caf") == true)
    }
}
