import CCuda
import Foundation
import MLRACore

/// The CUDA C++ kernel sources in the repository (Sources/MLRACuda/kernels/*.cu),
/// embedded in the binary at build time.
public enum KernelSource: String, CaseIterable, Sendable {
    case decodeAttention = "decode_attention.cu"
    case calibrate = "calibrate.cu"
    case cacheFill = "cache_fill.cu"
    case layerOps = "layer_ops.cu"

    public var text: String {
        switch self {
        case .decodeAttention: String(decoding: PackageResources.decode_attention_cu, as: UTF8.self)
        case .calibrate: String(decoding: PackageResources.calibrate_cu, as: UTF8.self)
        case .cacheFill: String(decoding: PackageResources.cache_fill_cu, as: UTF8.self)
        case .layerOps: String(decoding: PackageResources.layer_ops_cu, as: UTF8.self)
        }
    }
}

/// NVRTC, opened at run time: compiles kernel sources to cubins for a given
/// architecture (no GPU needed), cached per process and optionally on disk
/// (MLRA_KERNEL_CACHE=folder), keyed by source hash, options, architecture and
/// NVRTC version.
public final class KernelCompiler: @unchecked Sendable {
    public static let shared = KernelCompiler()

    private let lock = NSLock()
    private var cubins: [String: [UInt8]] = [:]
    private var modules: [String: CUmodule] = [:]
    public private(set) var libraryPath = ""

    /// Opens NVRTC from MLRA_NVRTC (a file or folder) or the library path.
    public func load() throws {
        lock.lock(); defer { lock.unlock() }
        var opened = [CChar](repeating: 0, count: 4096), err = [CChar](repeating: 0, count: 4096)
        let hint = ProcessInfo.processInfo.environment["MLRA_NVRTC"]
        guard mlra_cuda_load_nvrtc(hint, &opened, opened.count, &err, err.count) == 0 else {
            throw HarnessError(String(cString: err))
        }
        libraryPath = String(cString: opened)
    }

    public var version: String {
        var major: Int32 = 0, minor: Int32 = 0
        guard mlra_cuda.nvrtcVersion?(&major, &minor) == 0 else { return "unknown" }
        return "\(major).\(minor)"
    }

    /// The options every compilation gets: the target, then the shape's macros.
    static func options(arch: String, defines: [(String, Int)], flags: [String]) -> [String] {
        ["-arch=\(arch)", "-std=c++17"]
            + defines.map { "-D\($0.0)=\($0.1)" } + flags
    }

    /// Compiles `source` for `arch`; the cubin and NVRTC's log (warnings included).
    /// Throws with the log when compilation fails.
    public func compile(_ source: KernelSource, arch: String, defines: [(String, Int)] = [], flags: [String] = []) throws
        -> (cubin: [UInt8], log: String) {
        try load()
        let opts = Self.options(arch: arch, defines: defines, flags: flags)
        let key = cacheKey(source, opts)
        lock.lock()
        if let c = cubins[key] { lock.unlock(); return (c, "") }
        lock.unlock()
        if let c = diskCached(key) { remember(key, c); return (c, "") }

        var prog: nvrtcProgram? = nil
        try nvrtcCheck(mlra_cuda.nvrtcCreateProgram!(&prog, source.text, source.rawValue, 0, nil, nil), "nvrtcCreateProgram")
        defer { _ = mlra_cuda.nvrtcDestroyProgram!(&prog) }
        let cOpts = opts.map { strdup($0) }
        defer { cOpts.forEach { free($0) } }
        let status = cOpts.map { UnsafePointer($0) }.withUnsafeBufferPointer {
            mlra_cuda.nvrtcCompileProgram!(prog, Int32(opts.count), $0.baseAddress)
        }
        var logSize = 0
        _ = mlra_cuda.nvrtcGetProgramLogSize!(prog, &logSize)
        var logBuf = [CChar](repeating: 0, count: max(logSize, 1))
        _ = mlra_cuda.nvrtcGetProgramLog!(prog, &logBuf)
        let log = String(cString: logBuf).trimmingCharacters(in: .whitespacesAndNewlines)
        guard status == 0 else {
            let first = log.split(separator: "\n").prefix(8).joined(separator: " | ")
            throw HarnessError("kernel \(source.rawValue) failed to compile for \(arch) (\(opts.dropFirst(2).joined(separator: " "))): "
                               + "\(nvrtcMessage(status)): \(first)")
        }
        var size = 0
        try nvrtcCheck(mlra_cuda.nvrtcGetCUBINSize!(prog, &size), "nvrtcGetCUBINSize")
        var cubin = [UInt8](repeating: 0, count: size)
        try cubin.withUnsafeMutableBytes {
            try nvrtcCheck(mlra_cuda.nvrtcGetCUBIN!(prog, $0.baseAddress!.assumingMemoryBound(to: CChar.self)), "nvrtcGetCUBIN")
        }
        remember(key, cubin)
        storeOnDisk(key, cubin)
        return (cubin, log)
    }

    /// Compiles (or finds) and loads `function` of `source` into the current context.
    public func function(_ name: String, in source: KernelSource, arch: String, defines: [(String, Int)] = [],
                         flags: [String] = []) throws -> CUDAFunction {
        let (cubin, _) = try compile(source, arch: arch, defines: defines, flags: flags)
        let key = cacheKey(source, Self.options(arch: arch, defines: defines, flags: flags))
        lock.lock(); defer { lock.unlock() }
        var module = modules[key]
        if module == nil {
            var m: CUmodule? = nil
            try cubin.withUnsafeBytes { try CUDADriver.check(mlra_cuda.cuModuleLoadData!(&m, $0.baseAddress), "cuModuleLoadData(\(source.rawValue))") }
            module = m
            modules[key] = m
        }
        var f: CUfunction? = nil
        try CUDADriver.check(mlra_cuda.cuModuleGetFunction!(&f, module, name), "cuModuleGetFunction(\(name))")
        return CUDAFunction(function: f!, name: name)
    }

    private func remember(_ key: String, _ cubin: [UInt8]) { lock.lock(); cubins[key] = cubin; lock.unlock() }

    private func cacheKey(_ source: KernelSource, _ opts: [String]) -> String {
        let h = fnv1a64(Array(source.text.utf8) + Array(opts.joined(separator: "\u{1}").utf8))
        let arch = opts.first.map { String($0.dropFirst(6)) } ?? "unknown"
        return String(format: "%@-%016llx-%@-nvrtc%@", source.rawValue, h, arch, version)
    }

    private var diskFolder: String? {
        guard let d = ProcessInfo.processInfo.environment["MLRA_KERNEL_CACHE"], !d.isEmpty else { return nil }
        return d
    }

    private func diskCached(_ key: String) -> [UInt8]? {
        guard let d = diskFolder, let data = FileManager.default.contents(atPath: "\(d)/\(key).cubin") else { return nil }
        return [UInt8](data)
    }

    /// Best effort (a cache): written to a temporary name and renamed, so readers never see half a file.
    private func storeOnDisk(_ key: String, _ cubin: [UInt8]) {
        guard let d = diskFolder else { return }
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        let tmp = "\(d)/.\(key).\(getpid()).tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data(cubin)) else { return }
        if rename(tmp, "\(d)/\(key).cubin") != 0 { unlink(tmp) }
    }

    private func nvrtcCheck(_ r: nvrtcResult, _ what: String) throws {
        if r != 0 { throw HarnessError("\(what) failed: \(nvrtcMessage(r))") }
    }
}

func nvrtcMessage(_ r: nvrtcResult) -> String {
    mlra_cuda.nvrtcGetErrorString?(r).map { String(cString: $0) } ?? "NVRTC error \(r)"
}
