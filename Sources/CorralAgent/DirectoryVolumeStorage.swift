import CorralCore
import Dispatch
import Foundation
import Glibc

/// Volumes as directories (a shared file system mounted at the same path on every node, or a
/// node's own directory), images made and changed with `qemu-img`. Work runs on one serial
/// queue, off the agent's loop: operations of one volume run one at a time anyway (the core
/// issues them so), and a look at a hung NFS mount must not stall the loop.
public final class DirectoryVolumeStorage: VolumeStorage, @unchecked Sendable {
    private let queue = DispatchQueue(label: "corral.storage")
    private let looks = DispatchQueue(label: "corral.storage.probe", attributes: .concurrent)
    private let qemuImg: String

    public init(qemuImg: String = "/usr/bin/qemu-img") {
        self.qemuImg = qemuImg
    }

    public func run(_ operation: DiskOperation, volumePath: String, report: @escaping @Sendable (StorageEvent) -> Void) {
        queue.async { [self] in
            let outcome: DiskOperationOutcome
            do throws(StorageFailure) {
                try perform(operation, in: volumePath)
                outcome = .succeeded(Self.look(at: volumePath))
            } catch {
                outcome = .failed(error.message)
            }
            report(.operationFinished(operation, outcome))
        }
    }

    public func probe(_ volume: String, path: String, report: @escaping @Sendable (StorageEvent) -> Void) {
        looks.async { report(.probed(volume: volume, Self.look(at: path))) }
    }

    /// statvfs on the directory, and whether this process may write there.
    static func look(at path: String) -> VolumeProbe {
        var info = statvfs()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue,
              access(path, W_OK) == 0, statvfs(path, &info) == 0 else {
            return VolumeProbe(reachable: false, freeMiB: 0, capacityMiB: 0)
        }
        func mebibytes(_ blocks: UInt) -> Int { Int((UInt64(blocks) * UInt64(info.f_frsize)) >> 20) }
        return VolumeProbe(reachable: true, freeMiB: mebibytes(info.f_bavail), capacityMiB: mebibytes(info.f_blocks))
    }

    private func perform(_ operation: DiskOperation, in volumePath: String) throws(StorageFailure) {
        guard Self.look(at: volumePath).reachable else { throw StorageFailure("volume directory \(volumePath) is not reachable from this node") }
        let image = volumePath + "/" + operation.disk
        switch operation.action {
        case let .create(size, format):
            if try existing(image, expect: format) != nil { return try confirm(image, size: size, format: format) }
            // Made under a name of its own, then linked into place: link() never replaces an
            // image, so a create repeated on another node cannot clobber one a guest already uses.
            let scratch = "\(volumePath)/.\(operation.disk).op\(operation.id).\(getpid()).tmp"
            defer { unlink(scratch) }
            try qemu(["create", "-q", "-f", format.rawValue, scratch, "\(size)M"])
            if link(scratch, image) != 0 {
                let error = errno
                guard error == EEXIST else { throw StorageFailure("cannot put \(image) in place: \(String(cString: strerror(error)))") }
                try confirm(image, size: size, format: format)
            }
        case let .resize(size, format):
            guard let info = try existing(image, expect: format) else { throw StorageFailure("\(image) does not exist") }
            if info.virtualSizeMiB == size { return }
            try qemu(["resize", "-q", "-f", format.rawValue, image, "\(size)M"])
        case .delete:
            if unlink(image) != 0, errno != ENOENT { throw StorageFailure("cannot delete \(image): \(String(cString: strerror(errno)))") }
        }
    }

    /// The image a repeated create finds must be the one asked for; anything else was not made
    /// by this operation and is left alone.
    private func confirm(_ image: String, size: Int, format: DiskFormat) throws(StorageFailure) {
        guard let info = try existing(image, expect: format), info.virtualSizeMiB == size else {
            throw StorageFailure("\(image) already exists and is not a \(size) MiB \(format.rawValue) image; left as it is")
        }
    }

    private struct ImageInfo: Decodable {
        var virtualSize: Int
        var virtualSizeMiB: Int { virtualSize >> 20 }
        enum CodingKeys: String, CodingKey {
            case virtualSize = "virtual-size"
        }
    }

    /// `qemu-img info` of an image, nil if there is none, read as `format` (never probed from
    /// the content, which a guest controls).
    private func existing(_ image: String, expect format: DiskFormat) throws(StorageFailure) -> ImageInfo? {
        guard FileManager.default.fileExists(atPath: image) else { return nil }
        let output = try qemu(["info", "--output=json", "-U", "-f", format.rawValue, image])
        guard let info = try? JSONDecoder().decode(ImageInfo.self, from: Data(output.utf8)) else {
            throw StorageFailure("cannot read qemu-img info of \(image): \(output.prefix(200))")
        }
        return info
    }

    @discardableResult
    private func qemu(_ arguments: [String]) throws(StorageFailure) -> String {
        let result = CommandRunner.run([qemuImg] + arguments)
        guard result.status == 0 else {
            throw StorageFailure("qemu-img \(arguments.first ?? "") failed (\(result.status)): \(result.output.trimmingCharacters(in: .whitespacesAndNewlines).prefix(300))")
        }
        return result.output
    }
}

/// Why a disk operation failed, in words for the operator.
struct StorageFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
