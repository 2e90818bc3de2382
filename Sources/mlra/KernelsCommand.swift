import ArgumentParser
import Foundation
import MLRACore
import MLRACuda

/// `mlra kernels`: compiles every GPU kernel source with NVRTC for the given
/// architectures, at the shapes the variants use, with no GPU (CI runs this).
/// Any NVRTC warning counts as a failure.
struct KernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Compile the GPU kernel sources with NVRTC (no GPU needed); warnings fail.")

    @Option(help: "Architectures (comma-separated).") var arch = "sm_80,sm_90a"

    func run() throws {
        let compiler = KernelCompiler.shared
        try compiler.load()
        print("mlra \(HarnessVersion.string) kernels: NVRTC \(compiler.version) (\(compiler.libraryPath))")
        var failures = 0, count = 0
        for a in arch.split(separator: ",").map(String.init) {
            for k in KernelVariants.all(arch: a) {
                count += 1
                let label = "\(a) \(k.label)"
                do {
                    let (cubin, log) = try compiler.compile(k.source, arch: a, defines: k.defines, flags: k.flags)
                    if !log.isEmpty { failures += 1; print("WARN  \(label): \(log.replacingOccurrences(of: "\n", with: " | "))") }
                    else { print("ok    \(label) (\(cubin.count) B)") }
                } catch let e as HarnessError {
                    failures += 1
                    print("FAIL  \(label): \(e.message)")
                }
            }
        }
        print("\(count - failures) passed, \(failures) failed")
        if failures > 0 { throw HarnessError("\(failures) kernel compilation(s) failed or warned") }
    }
}
