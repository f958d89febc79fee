import Testing
@testable import CorralAgent

@Suite("CRC-32")
struct CRC32Tests {
    @Test func matchesStandardCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func emptyInputIsZero() {
        #expect(CRC32.checksum([UInt8]()) == 0)
    }
}

@Suite("WireFrame")
struct WireFrameTests {
    /// Builds a frame with arbitrary header fields and a correct checksum, to reach each validation step.
    private func handmadeFrame(
        magic: [UInt8] = Array("CRL1".utf8), version: UInt16 = 1, kind: UInt8 = 0x4D,
        declaredLength: UInt32? = nil, payload: [UInt8] = [1, 2, 3]
    ) -> [UInt8] {
        let length = declaredLength ?? UInt32(payload.count)
        var bytes = magic + [UInt8(version >> 8), UInt8(version & 0xFF), kind]
        bytes += [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
        bytes += payload
        let checksum = CRC32.checksum(bytes)
        return bytes + [UInt8(checksum >> 24), UInt8((checksum >> 16) & 0xFF), UInt8((checksum >> 8) & 0xFF), UInt8(checksum & 0xFF)]
    }

    @Test(arguments: [[UInt8](), [0], [0xFF, 0x00, 0x0A], Array(repeating: 0xA5, count: 70_000)])
    func roundTrips(payload: [UInt8]) throws {
        let frame = WireFrame.encode(kind: 0x42, payload: payload)
        #expect(frame.count == payload.count + WireFrame.overhead)
        let decoded = try WireFrame.decode(frame)
        #expect(decoded.kind == 0x42)
        #expect(decoded.payload == payload)
    }

    @Test func layoutIsBigEndianWithTrailingChecksum() {
        let frame = WireFrame.encode(kind: 7, payload: [0xAA, 0xBB])
        #expect(Array(frame[0..<13]) == [0x43, 0x52, 0x4C, 0x31, 0, 1, 7, 0, 0, 0, 2, 0xAA, 0xBB])
        #expect(frame == handmadeFrame(kind: 7, payload: [0xAA, 0xBB]))
    }

    @Test func rejectsInputShorterThanAnyFrame() {
        #expect(throws: WireError.tooShort(0)) { try WireFrame.decode([]) }
        #expect(throws: WireError.tooShort(14)) { try WireFrame.decode(Array(handmadeFrame(payload: []).dropLast())) }
    }

    @Test func rejectsForeignBytes() {
        #expect(throws: WireError.badMagic) { try WireFrame.decode(handmadeFrame(magic: Array("CRL2".utf8))) }
        #expect(throws: WireError.badMagic) { try WireFrame.decode(Array("GET / HTTP/1.1\r\n\r\n".utf8)) }
    }

    @Test func namesTheVersionOfANewerSender() {
        #expect(throws: WireError.newerVersion(2)) { try WireFrame.decode(handmadeFrame(version: 2)) }
        #expect(
            WireError.newerVersion(2).description
                == "message from a newer Corral (wire version 2); this node speaks 1")
    }

    @Test func rejectsVersionZero() {
        #expect(throws: WireError.unsupportedVersion(0)) { try WireFrame.decode(handmadeFrame(version: 0)) }
    }

    @Test func rejectsLengthThatDisagreesWithBytes() {
        #expect(throws: WireError.lengthMismatch(declared: 4, actual: 3)) {
            try WireFrame.decode(handmadeFrame(declaredLength: 4, payload: [1, 2, 3]))
        }
        let truncated = Array(WireFrame.encode(kind: 1, payload: [1, 2, 3, 4]).dropLast())
        #expect(throws: WireError.lengthMismatch(declared: 4, actual: 3)) { try WireFrame.decode(truncated) }
    }

    @Test func rejectsOversizedDeclaredPayload() {
        let declared = WireFrame.maximumPayloadLength + 1
        #expect(throws: WireError.payloadTooLarge(declared)) {
            try WireFrame.decode(handmadeFrame(declaredLength: UInt32(declared)))
        }
        #expect(throws: WireError.payloadTooLarge(Int(UInt32.max))) {
            try WireFrame.decode(handmadeFrame(declaredLength: UInt32.max))
        }
    }

    @Test func detectsCorruption() {
        var frame = WireFrame.encode(kind: 1, payload: [1, 2, 3])
        frame[12] ^= 0x10
        #expect(throws: WireError.checksumMismatch) { try WireFrame.decode(frame) }
        var badChecksum = WireFrame.encode(kind: 1, payload: [1, 2, 3])
        badChecksum[badChecksum.count - 1] ^= 0x01
        #expect(throws: WireError.checksumMismatch) { try WireFrame.decode(badChecksum) }
    }

    @Test func everyErrorHasASpecificDescription() {
        let errors: [WireError] = [
            .tooShort(3), .badMagic, .newerVersion(9), .unsupportedVersion(0),
            .lengthMismatch(declared: 5, actual: 2), .checksumMismatch, .payloadTooLarge(1 << 30),
        ]
        let descriptions = errors.map(\.description)
        #expect(Set(descriptions).count == errors.count)
        #expect(descriptions[0] == "frame is 3 bytes, shorter than the 15-byte minimum")
        #expect(descriptions[4] == "frame declares a 5-byte payload but carries 2 bytes")
    }

    /// Feeds mutated and random inputs: decoding must never trap, and anything it accepts must be
    /// exactly the canonical encoding of what it returned (so only valid frames decode).
    @Test func fuzzedInputsNeverCrashAndOnlyValidFramesDecode() {
        var random = SplitMix64(seed: 0xC0FF_EE00_1234_5678)
        var decodedUnmutated = 0
        var acceptedMutations = 0
        let iterations = 30_000
        for iteration in 0..<iterations {
            let payload = (0..<Int.random(in: 0...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            let original = WireFrame.encode(kind: UInt8.random(in: 0...255, using: &random), payload: payload)
            var input = original
            let mutation = iteration % 8
            switch mutation {
            case 0:
                break
            case 1:
                let bit = Int.random(in: 0..<(input.count * 8), using: &random)
                input[bit / 8] ^= 1 << (bit % 8)
            case 2:
                for _ in 0..<Int.random(in: 2...8, using: &random) {
                    let bit = Int.random(in: 0..<(input.count * 8), using: &random)
                    input[bit / 8] ^= 1 << (bit % 8)
                }
            case 3:
                input = Array(input.prefix(Int.random(in: 0..<input.count, using: &random)))
            case 4:
                input += (0..<Int.random(in: 1...16, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 5:
                input = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 6:
                input = Array(original.prefix(6)) + (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            default:
                for offset in 7..<11 { input[offset] = UInt8.random(in: 0...255, using: &random) }
            }
            do {
                let decoded = try WireFrame.decode(input)
                #expect(WireFrame.encode(kind: decoded.kind, payload: decoded.payload) == input, "iteration \(iteration)")
                if mutation == 0 { decodedUnmutated += 1 } else if input != original { acceptedMutations += 1 }
            } catch {
                #expect(mutation != 0, "valid frame rejected at iteration \(iteration): \(error)")
            }
        }
        #expect(decodedUnmutated == iterations / 8)
        #expect(acceptedMutations == 0)
    }
}

/// Deterministic pseudo-random source (SplitMix64), so a failing fuzz case reproduces from its seed.
private struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
