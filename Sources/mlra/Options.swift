import ArgumentParser
import Foundation
import MLRACore

extension VariantName: ExpressibleByArgument {}
extension StorageDType: ExpressibleByArgument {}
extension KernelISA: ExpressibleByArgument {}
extension KernelMath: ExpressibleByArgument {}

/// Where the layer's weights come from: a safetensors file or a seed.
struct WeightOptions: ParsableArguments {
    @Option(name: .long, help: "Weights in safetensors (F32/F16/BF16) with the authors' parameter names.")
    var weights: String?

    @Option(name: .long, help: "Seed for deterministic weights (used when --weights is absent).")
    var seed: UInt64 = 0

    func source() throws -> WeightSource {
        if let weights { return try SafeTensorsWeights(path: weights) }
        return SeededWeights(seed: seed)
    }
}

/// Where a TP group may lie: inside one node (the default) or across nodes.
struct TopologyOptions: ParsableArguments {
    @Flag(name: .customLong("allow-cross-node-tp"),
          help: "Let a TP group span nodes (default: a TP degree that does not divide the ranks per node is refused).")
    var allowCrossNodeTP = false
}

/// Which attention kernel runs the decode: the fast tiled one (what sweeps time)
/// or the plain reference kernel.
struct KernelOptions: ParsableArguments {
    enum Choice: String, ExpressibleByArgument, CaseIterable { case tiled, plain }

    @Option(help: "Attention kernel: tiled (fast, default) or plain (reference).")
    var kernel: Choice = .tiled
    @Option(help: "Threads of the tiled kernel per rank.")
    var threads = 1
    @Option(help: KernelMath.help) var math: KernelMath = .f32

    func validate() throws { try validateThreads(threads); try math.validate() }

    func make() throws -> AttentionKernel {
        kernel == .tiled ? try TiledAttentionKernel(threads: threads, math: math) : PlainAttentionKernel()
    }
}

/// A flag given under its deprecated spelling (kept hidden so that old scripts run):
/// the value under either name, a warning when the old one was used, a usage error
/// when both were. Call it from `validate()` (ArgumentParser reports only a
/// ValidationError thrown there as a usage error).
func renamed<T>(_ value: T?, _ name: String, old: T?, _ oldName: String) throws -> T? {
    guard let old else { return value }
    guard value == nil else { throw ValidationError("give \(name) or its old spelling \(oldName), not both") }
    FileHandle.standardError.write(Data("mlra: warning: \(oldName) is deprecated; use \(name)\n".utf8))
    return old
}

/// `--threads` of every command, checked as a usage error by `WorkerPool.checkThreads`
/// (at least 1, at most the node's cores).
func validateThreads(_ threads: Int) throws {
    do { try WorkerPool.checkThreads(threads, "--threads") } catch let e as HarnessError { throw ValidationError(e.message) }
}

extension KernelMath {
    /// `--math` of bench, sweep, forward and generate.
    static let help = ArgumentHelp(
        "Products of the tiled kernel on bf16 caches: f32 (default); bf16 (bf16 products, f32 sums, in the large-group loops; needs AVX-512 BF16); auto (bf16 where this CPU runs them faster than f32).")

    /// `--math bf16` on a CPU without AVX-512 BF16 is a usage error.
    func validate() throws {
        if self == .bf16 && !ProductMath.bf16.isSupported { throw ValidationError("--math bf16: this CPU has no AVX-512 BF16") }
    }
}
