/// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum
/// recorded in every envelope as `"crc32c:xxxxxxxx"` (8 lowercase hex digits).
///
/// Why CRC-32C and not a cryptographic hash: the checksum guards against torn writes,
/// bit rot and accidental edits of a `.msg` file, not against an attacker who can write
/// to the spool (such a person can rewrite the `.env` too). CRC-32C detects every burst
/// error up to 32 bits and is what ext4, iSCSI and SCTP use for the same job; this
/// table-driven "slicing-by-8" version needs no C library.
///
/// Check value (RFC 3720 §B.4): CRC-32C of the ASCII bytes "123456789" is 0xE3069283.
public struct CRC32C: Sendable {
    /// The running value, already finalised (`value` can be read at any time).
    public private(set) var value: UInt32 = 0

    public init() {}

    /// Feeds more bytes; `update(a); update(b)` equals one `update(a + b)`.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var crc = ~value
        let tables = CRC32C.tables
        tables.withUnsafeBufferPointer { t in
            var index = 0
            let count = bytes.count
            // Slicing-by-8: eight table look-ups per 8 input bytes, no data dependency
            // between them except through `crc`.
            while count - index >= 8 {
                let lo =
                    crc
                    ^ (UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8
                        | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24)
                let hi =
                    UInt32(bytes[index + 4]) | UInt32(bytes[index + 5]) << 8
                    | UInt32(bytes[index + 6]) << 16 | UInt32(bytes[index + 7]) << 24
                crc =
                    t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                index += 8
            }
            while index < count {
                crc = t[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
                index += 1
            }
        }
        value = ~crc
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// CRC-32C of `bytes` in one call.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }

    /// The envelope's spelling of a checksum: `"crc32c:"` + 8 lowercase hex digits.
    public static func envelopeString(_ bytes: [UInt8]) -> String {
        envelopeString(value: checksum(bytes))
    }

    static func envelopeString(value: UInt32) -> String {
        let hex = String(value, radix: 16, uppercase: false)
        return "crc32c:" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// tables[k * 256 + b]: the CRC of byte b followed by k zero bytes.
    private static let tables: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
            }
            table[byte] = crc
        }
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = table[(k - 1) * 256 + byte]
                table[k * 256 + byte] = table[Int(previous & 0xFF)] ^ (previous >> 8)
            }
        }
        return table
    }()
}
