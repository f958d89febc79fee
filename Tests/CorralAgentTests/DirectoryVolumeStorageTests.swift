import CorralAgent
import CorralCore
import Foundation
import Testing

/// The storage shell on a real directory with the real qemu-img: each operation reaches its end
/// state, and running it again (a new coordinator that never saw the answer) changes nothing.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img"), "needs qemu-img"))
struct DirectoryVolumeStorageTests {
    static func run(_ storage: DirectoryVolumeStorage, _ op: DiskOperation, in dir: String) -> DiskOperationOutcome {
        let answer = Answer()
        storage.run(op, volumePath: dir) { if case let .operationFinished(_, outcome) = $0 { answer.set(outcome) } }
        return answer.wait()
    }

    static func size(_ path: String) -> Int? {
        let r = CommandRunner.run(["/usr/bin/qemu-img", "info", "--output=json", "-U", path])
        guard let o = try? JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any] else { return nil }
        return (o["virtual-size"] as? Int).map { $0 >> 20 }
    }

    @Test func operationsAreIdempotent() throws {
        let dir = NSTemporaryDirectory() + "corral-volume-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let storage = DirectoryVolumeStorage()
        let create = DiskOperation(id: 1, volume: "v", disk: "d", action: .create(sizeMiB: 32, format: .qcow2))
        for _ in 0..<2 {
            guard case .succeeded = Self.run(storage, create, in: dir) else { Issue.record("create failed"); return }
            #expect(Self.size(dir + "/d") == 32)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["d"], "no scratch file is left behind")
        let other = DiskOperation(id: 2, volume: "v", disk: "d", action: .create(sizeMiB: 64, format: .qcow2))
        guard case let .failed(why) = Self.run(storage, other, in: dir) else { Issue.record("a different image was accepted"); return }
        #expect(why.contains("already exists and is not a 64 MiB qcow2 image; left as it is"))
        #expect(Self.size(dir + "/d") == 32)

        let resize = DiskOperation(id: 3, volume: "v", disk: "d", action: .resize(sizeMiB: 48, format: .qcow2))
        for _ in 0..<2 {
            guard case .succeeded = Self.run(storage, resize, in: dir) else { Issue.record("resize failed"); return }
            #expect(Self.size(dir + "/d") == 48)
        }
        let delete = DiskOperation(id: 4, volume: "v", disk: "d", action: .delete)
        for _ in 0..<2 {
            guard case let .succeeded(probe) = Self.run(storage, delete, in: dir) else { Issue.record("delete failed"); return }
            #expect(probe.reachable && probe.capacityMiB > 0)
            #expect(!FileManager.default.fileExists(atPath: dir + "/d"))
        }
        guard case let .failed(missing) = Self.run(storage, create, in: dir + "/absent") else { Issue.record("created in a missing directory"); return }
        #expect(missing.contains("is not reachable from this node"))
    }
}

/// One answer from a storage callback, waited for by the test.
private final class Answer: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var outcome: DiskOperationOutcome?
    func set(_ value: DiskOperationOutcome) { outcome = value; done.signal() }
    func wait() -> DiskOperationOutcome {
        _ = done.wait(timeout: .now() + 30)
        return outcome ?? .failed("no answer within 30 s")
    }
}
