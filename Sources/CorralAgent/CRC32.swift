/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the checksum that lets
/// every wire frame and the state file detect corruption. Implemented here,
/// table-driven, so no node depends on a platform zlib for its integrity check.
public enum CRC32 {
    /// Returns the CRC-32 of `bytes`; "123456789" yields the catalogue check value 0xCBF43926.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        table.withUnsafeBufferPointer { table in
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc = table[Int(UInt8(truncatingIfNeeded: crc) ^ byte)] ^ (crc >> 8)
            }
            return crc ^ 0xFFFF_FFFF
        }
    }

    /// The remainder of every possible byte, computed once so checksumming costs one lookup per byte.
    private static let table: [UInt32] = (0..<256).map { index in
        var remainder = UInt32(index)
        for _ in 0..<8 {
            remainder = remainder & 1 == 1 ? (remainder >> 1) ^ reflectedPolynomial : remainder >> 1
        }
        return remainder
    }

    private static let reflectedPolynomial: UInt32 = 0xEDB8_8320
}
