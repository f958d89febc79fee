import CorralAgent
import CorralCore
import Testing

/// Agents exchange `Envelope`s; a garbled message or one from a newer Corral must be refused
/// with a reason and never crash the agent.
struct EnvelopeCodecTests {
    static let sample = Envelope(origin: 2, sequence: 7, body: .command(.addVM(VMSpec(name: "web", memoryMiB: 512), running: true, dirtyRateMiBps: 3)))

    @Test func roundTripsByteExactly() throws {
        let bytes = EnvelopeCodec.encode(Self.sample)
        #expect(try EnvelopeCodec.decode(bytes) == Self.sample)
        #expect(EnvelopeCodec.encode(try EnvelopeCodec.decode(bytes)) == bytes)
    }

    @Test func snapshotOfAStateRoundTripsWithTheSameDigest() throws {
        var state = ClusterState()
        _ = state.apply(.registerNode(NodeSpec(id: 1, name: "n1", capacity: Capacity(memoryMiB: 4096, vcpus: 4))))
        _ = state.apply(.addVM(VMSpec(name: "a", memoryMiB: 256, disks: ["/csv/a.img"]), running: true, dirtyRateMiBps: 0))
        _ = state.apply(.place(vm: "a", on: 1))
        let envelope = Envelope(origin: 1, sequence: 1, body: .snapshot(state, view: "v"))
        let decoded = try EnvelopeCodec.decode(EnvelopeCodec.encode(envelope))
        guard case let .snapshot(copy, _) = decoded.body else { Issue.record("not a snapshot"); return }
        #expect(copy == state)
        #expect(copy.digest == state.digest)
    }

    @Test func messageFromANewerVersionIsRefused() {
        var bytes = EnvelopeCodec.encode(Self.sample)
        bytes[5] = 9 // version field, low byte
        #expect(throws: EnvelopeDecodingError.self) { try EnvelopeCodec.decode(bytes) }
    }

    @Test func validFrameWithGarbagePayloadIsRefused() {
        let frame = WireFrame.encode(kind: 0x45, payload: Array(#"{"origin":1,"sequence":"x"}"#.utf8))
        #expect(throws: EnvelopeDecodingError.self) { try EnvelopeCodec.decode(frame) }
        let otherKind = WireFrame.encode(kind: 0x53, payload: JSONCoding.encode(Self.sample))
        #expect(throws: EnvelopeDecodingError.unexpectedKind(0x53)) { try EnvelopeCodec.decode(otherKind) }
    }

    /// 20,000 mutated messages: bit flips, truncations, spliced JSON with a recomputed checksum.
    @Test(arguments: 0..<4)
    func fuzzedMessagesNeverCrashAndOnlyValidOnesDecode(chunk: Int) {
        var rng = UInt64(0xC0FFEE) &+ UInt64(chunk)
        func next() -> Int {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: rng >> 33)
        }
        let original = EnvelopeCodec.encode(Self.sample)
        let payload = JSONCoding.encode(Self.sample)
        for _ in 0..<5_000 {
            var bytes: [UInt8]
            switch next() % 3 {
            case 0:
                bytes = original
                for _ in 0...(next() % 4) { bytes[next() % bytes.count] ^= UInt8(1 << (next() % 8)) }
            case 1:
                bytes = Array(original.prefix(next() % original.count))
            default:
                var mutated = payload
                for _ in 0...(next() % 6) { mutated[next() % mutated.count] = UInt8(next() % 256) }
                bytes = WireFrame.encode(kind: 0x45, payload: mutated)
            }
            if let decoded = try? EnvelopeCodec.decode(bytes) {
                // Anything that decodes must be a well-formed envelope that re-encodes losslessly.
                #expect((try? EnvelopeCodec.decode(EnvelopeCodec.encode(decoded))) == decoded)
            }
        }
    }
}
