/// A 128-bit FNV-1a digest of a Codable value, computed by walking its encoding: stdlib only,
/// the same on every node and every run (no hashing seed involved).
public enum StateDigest {
    public static func of<T: Encodable>(_ value: T) -> String {
        let sink = DigestSink()
        // The digest encoder cannot fail: it accepts every value the Encoder protocol allows.
        try! value.encode(to: DigestEncoder(sink: sink))
        return sink.hex
    }
}

/// Two independent FNV-1a lanes give 128 bits: plenty to tell diverged states apart.
final class DigestSink {
    private var low: UInt64 = 0xcbf2_9ce4_8422_2325
    private var high: UInt64 = 0x6c62_272e_07bb_0142

    func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for byte in bytes {
            low = (low ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            high = (high ^ UInt64(byte ^ 0x5a)) &* 0x0000_0100_0000_01b3
        }
    }
    func add(tag: UInt8, _ text: String) {
        add([tag])
        add(text.utf8)
        add([0])
    }
    var hex: String {
        func h(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return h(high) + h(low)
    }
}

struct DigestEncoder: Encoder {
    let sink: DigestSink
    var codingPath: [CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        sink.add([0x7b])
        return KeyedEncodingContainer(Keyed<Key>(sink: sink))
    }
    func unkeyedContainer() -> UnkeyedEncodingContainer {
        sink.add([0x5b])
        return Unkeyed(sink: sink)
    }
    func singleValueContainer() -> SingleValueEncodingContainer { Single(sink: sink) }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let sink: DigestSink
        var codingPath: [CodingKey] = []
        mutating func encodeNil(forKey key: Key) throws { sink.add(tag: 1, key.stringValue) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            sink.add(tag: 2, key.stringValue)
            try value.encode(to: DigestEncoder(sink: sink))
        }
        mutating func nestedContainer<NK: CodingKey>(keyedBy keyType: NK.Type, forKey key: Key) -> KeyedEncodingContainer<NK> {
            sink.add(tag: 3, key.stringValue)
            return DigestEncoder(sink: sink).container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
            sink.add(tag: 4, key.stringValue)
            return DigestEncoder(sink: sink).unkeyedContainer()
        }
        mutating func superEncoder() -> Encoder { DigestEncoder(sink: sink) }
        mutating func superEncoder(forKey key: Key) -> Encoder { DigestEncoder(sink: sink) }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let sink: DigestSink
        var codingPath: [CodingKey] = []
        var count = 0
        mutating func encodeNil() throws { count += 1; sink.add([0x30]) }
        mutating func encode<T: Encodable>(_ value: T) throws {
            count += 1
            sink.add([0x2c])
            try value.encode(to: DigestEncoder(sink: sink))
        }
        mutating func nestedContainer<NK: CodingKey>(keyedBy keyType: NK.Type) -> KeyedEncodingContainer<NK> {
            count += 1
            return DigestEncoder(sink: sink).container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
            count += 1
            return DigestEncoder(sink: sink).unkeyedContainer()
        }
        mutating func superEncoder() -> Encoder { DigestEncoder(sink: sink) }
    }

    /// Scalars are hashed through their text form, which is exact for every scalar type.
    struct Single: SingleValueEncodingContainer {
        let sink: DigestSink
        var codingPath: [CodingKey] = []
        mutating func encodeNil() throws { sink.add([0x30]) }
        mutating func encode(_ value: Bool) throws { sink.add([value ? 0x74 : 0x66]) }
        mutating func encode(_ value: String) throws { sink.add(tag: 0x73, value) }
        mutating func encode(_ value: Double) throws { sink.add(tag: 0x64, "\(value)") }
        mutating func encode(_ value: Float) throws { sink.add(tag: 0x64, "\(value)") }
        mutating func encode(_ value: Int) throws { sink.add(tag: 0x69, "\(value)") }
        mutating func encode(_ value: Int8) throws { sink.add(tag: 0x69, "\(value)") }
        mutating func encode(_ value: Int16) throws { sink.add(tag: 0x69, "\(value)") }
        mutating func encode(_ value: Int32) throws { sink.add(tag: 0x69, "\(value)") }
        mutating func encode(_ value: Int64) throws { sink.add(tag: 0x69, "\(value)") }
        mutating func encode(_ value: UInt) throws { sink.add(tag: 0x69, "\(value)") }
        mutating func encode(_ value: UInt8) throws { sink.add(tag: 0x69, "\(value)") }
        mutating func encode(_ value: UInt16) throws { sink.add(tag: 0x69, "\(value)") }
        mutating func encode(_ value: UInt32) throws { sink.add(tag: 0x69, "\(value)") }
        mutating func encode(_ value: UInt64) throws { sink.add(tag: 0x69, "\(value)") }
        mutating func encode<T: Encodable>(_ value: T) throws { try value.encode(to: DigestEncoder(sink: sink)) }
    }
}
