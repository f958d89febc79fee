import CorralCore
import Foundation

/// Envelopes on the wire: JSON of the Codable `Envelope` (sorted keys, so equal values give
/// equal bytes) inside a versioned, checksummed `WireFrame`.
public enum EnvelopeCodec {
    static let envelopeKind: UInt8 = 0x45 // "E"

    public static func encode(_ envelope: Envelope) -> [UInt8] {
        WireFrame.encode(kind: envelopeKind, payload: JSONCoding.encode(envelope))
    }

    /// Decodes a frame from a peer; every failure names what was wrong and nothing is applied.
    public static func decode(_ bytes: [UInt8]) throws(EnvelopeDecodingError) -> Envelope {
        let frame: (kind: UInt8, payload: [UInt8])
        do { frame = try WireFrame.decode(bytes) } catch { throw .frame(error) }
        guard frame.kind == envelopeKind else { throw .unexpectedKind(frame.kind) }
        do { return try JSONCoding.decode(Envelope.self, from: frame.payload) } catch {
            throw .payload(String(describing: error).prefix(200).description)
        }
    }
}

public enum EnvelopeDecodingError: Error, CustomStringConvertible, Equatable {
    case frame(WireError)
    case unexpectedKind(UInt8)
    case payload(String)
    public var description: String {
        switch self {
        case let .frame(e): "bad frame: \(e)"
        case let .unexpectedKind(k): "unexpected frame kind \(k)"
        case let .payload(why): "undecodable envelope: \(why)"
        }
    }
}

/// One JSON configuration for everything Corral writes: sorted keys, so output is byte-stable.
public enum JSONCoding {
    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Corral's own types always encode: a failure here is a programming error.
        return Array(try! encoder.encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}
