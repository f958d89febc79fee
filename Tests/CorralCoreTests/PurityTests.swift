import Foundation
import Testing

/// CorralCore must be pure and deterministic (DESIGN §1): no Foundation, no clock, no randomness,
/// so every node and the simulator compute the same thing from the same inputs.
@Suite struct PurityTests {
    static let forbidden = ["import Foundation", "Date(", ".random", "DispatchTime", "ProcessInfo"]

    static var coreDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()   // Tests/CorralCoreTests
            .deletingLastPathComponent().deletingLastPathComponent()  // the package
            .appendingPathComponent("Sources/CorralCore")
    }

    @Test func coreHasNoClockRandomnessOrFoundation() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.coreDirectory.path)
            .filter { $0.hasSuffix(".swift") }.sorted()
        #expect(files.count >= 10, "found only \(files) in \(Self.coreDirectory.path)")
        var hits: [String] = []
        for file in files {
            let text = try String(contentsOf: Self.coreDirectory.appendingPathComponent(file), encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                for word in Self.forbidden where line.contains(word) { hits.append("\(file):\(n + 1): \(word)") }
            }
        }
        #expect(hits.isEmpty, "CorralCore must stay pure:\n\(hits.joined(separator: "\n"))")
    }
}
