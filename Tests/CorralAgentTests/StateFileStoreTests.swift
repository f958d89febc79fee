import Foundation
import Glibc
import Testing
@testable import CorralAgent

@Suite("StateFileStore")
struct StateFileStoreTests {
    private func withStore(_ body: (StateFileStore, ScratchDirectory) throws -> Void) throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try body(StateFileStore(directory: scratch.path + "/var/lib/corral"), scratch)
    }

    private func mode(of path: String) -> mode_t {
        var status = stat()
        #expect(stat(path, &status) == 0)
        return status.st_mode & 0o7777
    }

    private func overwrite(_ path: String, with bytes: [UInt8]) {
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
    }

    @Test func missingFileLoadsAsNil() throws {
        try withStore { store, _ in
            let loaded = try store.load()
            #expect(loaded == nil)
        }
    }

    @Test func saveThenLoadRoundTripsAndReplaces() throws {
        try withStore { store, _ in
            try store.save(Array("first".utf8))
            #expect(try store.load() == Array("first".utf8))
            try store.save([])
            #expect(try store.load() == [])
            let large = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try store.save(large)
            #expect(try store.load() == large)
        }
    }

    @Test func createsPrivateDirectoryAndLeavesNoTemporaryFile() throws {
        try withStore { store, _ in
            try store.save([1, 2, 3])
            #expect(mode(of: store.directory) == 0o700)
            #expect(mode(of: store.statePath) == 0o600)
            #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory) == ["state.bin"])
        }
    }

    @Test func storesAFramedBlob() throws {
        try withStore { store, _ in
            try store.save([9, 8, 7])
            let onDisk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: store.statePath)))
            let frame = try WireFrame.decode(onDisk)
            #expect(frame.kind == UInt8(ascii: "S"))
            #expect(frame.payload == [9, 8, 7])
        }
    }

    @Test func garbageIsReportedAsCorrupt() throws {
        try withStore { store, _ in
            try store.save([1])
            overwrite(store.statePath, with: Array("this is not a state file at all".utf8))
            #expect(throws: StateFileError.corrupt(path: store.statePath, reason: WireError.badMagic.description)) {
                try store.load()
            }
            overwrite(store.statePath, with: [])
            #expect(throws: StateFileError.corrupt(path: store.statePath, reason: WireError.tooShort(0).description)) {
                try store.load()
            }
        }
    }

    @Test func flippedBitIsReportedAsCorrupt() throws {
        try withStore { store, _ in
            try store.save(Array("replicated state".utf8))
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: store.statePath)))
            bytes[14] ^= 0x04
            overwrite(store.statePath, with: bytes)
            let expected = StateFileError.corrupt(path: store.statePath, reason: WireError.checksumMismatch.description)
            #expect(throws: expected) { try store.load() }
            #expect(expected.description.hasPrefix("state file \(store.statePath) is corrupt: frame checksum mismatch"))
        }
    }

    @Test func truncatedFileIsReportedAsCorrupt() throws {
        try withStore { store, _ in
            try store.save([1, 2, 3, 4, 5])
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: store.statePath)))
            overwrite(store.statePath, with: Array(bytes.dropLast(2)))
            let reason = WireError.lengthMismatch(declared: 5, actual: 3).description
            #expect(throws: StateFileError.corrupt(path: store.statePath, reason: reason)) { try store.load() }
        }
    }

    @Test func frameOfAnotherKindIsReportedAsCorrupt() throws {
        try withStore { store, _ in
            try store.save([1])
            overwrite(store.statePath, with: WireFrame.encode(kind: 0x4D, payload: [1]))
            #expect(throws: StateFileError.corrupt(path: store.statePath, reason: "frame kind 77 is not the state-file kind 83")) {
                try store.load()
            }
        }
    }

    @Test func directoryThatIsAFileIsAnIOError() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let blocker = scratch.path + "/blocker"
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data()))
        let store = StateFileStore(directory: blocker)
        let expected = StateFileError.io(path: blocker, operation: "create directory", errno: ENOTDIR)
        #expect(throws: expected) { try store.save([1]) }
        #expect(expected.description == "cannot create directory \(blocker): Not a directory (errno \(ENOTDIR))")
    }

    @Test func unreadableStateFileIsAnIOError() throws {
        try withStore { store, _ in
            try FileManager.default.createDirectory(atPath: store.statePath, withIntermediateDirectories: true)
            #expect(throws: StateFileError.io(path: store.statePath, operation: "read", errno: EISDIR)) {
                try store.load()
            }
        }
    }

    @Test func refusesBlobLargerThanAFrameCarries() throws {
        try withStore { store, _ in
            let limit = WireFrame.maximumPayloadLength
            #expect(throws: StateFileError.tooLarge(bytes: limit + 1, limit: limit)) {
                try store.save([UInt8](repeating: 0, count: limit + 1))
            }
            let loaded = try store.load()
            #expect(loaded == nil)
        }
    }
}
