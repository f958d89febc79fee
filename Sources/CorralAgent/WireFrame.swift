/// The envelope around every message agents multicast over Corosync CPG and
/// around the persisted state file, so that foreign, truncated, corrupted or
/// too-new bytes are rejected with a precise reason instead of being misread.
///
/// Layout (integers big-endian):
///
///     offset  size  field
///     0       4     magic "CRL1"
///     4       2     format version
///     6       1     kind (meaning chosen by the caller)
///     7       4     payload length N
///     11      N     payload
///     11+N    4     CRC-32 (IEEE) of bytes 0..<11+N
///
/// Only magic and version are frozen forever: any other layout change bumps the
/// version, so older nodes refuse newer frames by name rather than mis-parse them.
public enum WireFrame {
    /// The format version this build writes and the newest it can read.
    public static let currentVersion: UInt16 = 1

    /// Cap on payload size, so a corrupted length field can never trigger a huge allocation.
    public static let maximumPayloadLength = 64 * 1024 * 1024

    /// Bytes a frame adds around its payload (header plus checksum).
    public static let overhead = headerLength + checksumLength

    static let magic: [UInt8] = Array("CRL1".utf8)
    static let headerLength = 11
    static let checksumLength = 4

    /// Wraps `payload` in a frame of the current version.
    ///
    /// - Precondition: `payload.count <= maximumPayloadLength`; callers persisting
    ///   or sending caller-sized data must check first (decode would reject it).
    public static func encode(kind: UInt8, payload: [UInt8]) -> [UInt8] {
        precondition(
            payload.count <= maximumPayloadLength,
            "WireFrame payload of \(payload.count) bytes exceeds the \(maximumPayloadLength)-byte limit")
        var frame: [UInt8] = []
        frame.reserveCapacity(overhead + payload.count)
        frame += magic
        appendBigEndian(currentVersion, to: &frame)
        frame.append(kind)
        appendBigEndian(UInt32(payload.count), to: &frame)
        frame += payload
        appendBigEndian(CRC32.checksum(frame), to: &frame)
        return frame
    }

    /// Validates a complete frame and returns its kind and payload.
    /// Total over all inputs: malformed bytes always throw, never trap.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> (kind: UInt8, payload: [UInt8]) {
        guard bytes.count >= overhead else { throw .tooShort(bytes.count) }
        guard bytes[0..<magic.count].elementsEqual(magic) else { throw .badMagic }
        let version = UInt16(readBigEndian(bytes, at: 4, byteCount: 2))
        guard version <= currentVersion else { throw .newerVersion(version) }
        guard version >= 1 else { throw .unsupportedVersion(version) }
        let kind = bytes[6]
        let declaredLength = Int(readBigEndian(bytes, at: 7, byteCount: 4))
        guard declaredLength <= maximumPayloadLength else { throw .payloadTooLarge(declaredLength) }
        let actualLength = bytes.count - overhead
        guard declaredLength == actualLength else {
            throw .lengthMismatch(declared: declaredLength, actual: actualLength)
        }
        let checksumOffset = headerLength + declaredLength
        let storedChecksum = UInt32(readBigEndian(bytes, at: checksumOffset, byteCount: 4))
        guard CRC32.checksum(bytes[0..<checksumOffset]) == storedChecksum else { throw .checksumMismatch }
        return (kind, Array(bytes[headerLength..<checksumOffset]))
    }

    private static func appendBigEndian<Value: FixedWidthInteger>(_ value: Value, to bytes: inout [UInt8]) {
        for shift in stride(from: Value.bitWidth - 8, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }

    private static func readBigEndian(_ bytes: [UInt8], at offset: Int, byteCount: Int) -> UInt64 {
        bytes[offset..<offset + byteCount].reduce(0) { ($0 << 8) | UInt64($1) }
    }
}

/// Why bytes were not accepted as a frame; each description is written for an operator's log.
public enum WireError: Error, Equatable, CustomStringConvertible {
    /// Fewer bytes than the smallest possible frame.
    case tooShort(Int)
    /// The bytes do not start with "CRL1", so they are not a Corral frame at all.
    case badMagic
    /// Written by a newer Corral during a rolling upgrade; this node cannot interpret it.
    case newerVersion(UInt16)
    /// A version this build no longer (or never) understood.
    case unsupportedVersion(UInt16)
    /// The length field disagrees with the bytes actually present (truncation or trailing junk).
    case lengthMismatch(declared: Int, actual: Int)
    /// The checksum does not match: corrupted in transit or on disk.
    case checksumMismatch
    /// The declared payload exceeds `WireFrame.maximumPayloadLength`.
    case payloadTooLarge(Int)

    public var description: String {
        switch self {
        case .tooShort(let count):
            "frame is \(count) bytes, shorter than the \(WireFrame.overhead)-byte minimum"
        case .badMagic:
            "not a Corral frame (magic bytes are not \"CRL1\")"
        case .newerVersion(let version):
            "message from a newer Corral (wire version \(version)); this node speaks \(WireFrame.currentVersion)"
        case .unsupportedVersion(let version):
            "unsupported wire version \(version); this node speaks \(WireFrame.currentVersion)"
        case .lengthMismatch(let declared, let actual):
            "frame declares a \(declared)-byte payload but carries \(actual) bytes"
        case .checksumMismatch:
            "frame checksum mismatch (data corrupted in transit or on disk)"
        case .payloadTooLarge(let length):
            "frame declares a \(length)-byte payload, above the \(WireFrame.maximumPayloadLength)-byte limit"
        }
    }
}
