import ArgumentParser
import Foundation
import MLRABench
import MLRACore
import MLRACuda

/// `mlra selftest --device cuda`: the GPU kernels against the CPU plain kernel, a
/// pass/fail table (GPUSelfTest says what it covers); any failure is an error (exit status 1).
struct SelftestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check the GPU decode kernels against the CPU reference across variants, dtypes, batches and lengths.")

    @Option(help: "cuda (the CPU kernels are checked by the test suite).") var device: DeviceKind = .cuda
    @Option(name: .customLong("kv-dtypes"), help: "Cache dtypes to check (comma-separated).") var kvDtypes = "f32,f16,bf16"

    func run() throws {
        guard device == .cuda else { throw HarnessError.usage("selftest checks --device cuda; the CPU kernels are checked by 'make test'") }
        let dtypes = try checkingFlags { try parseList(kvDtypes, "--kv-dtypes") { try $0.split(separator: ",").map { try StorageDType.parse(String($0)) } } }
        let gpu = try CUDADevice.bindFromEnvironment()
        print("mlra \(HarnessVersion.string) selftest: \(gpu.summary)")
        print("case".padding(toLength: 24, withPad: " ", startingAt: 0) + "dtype  lengths            "
              + "max|err|    result  kernel")
        let rows = try GPUSelfTest.run(device: gpu, dtypes: dtypes) { r in
            let lens = r.lengths.map(String.init).joined(separator: ",")
            print(r.name.padding(toLength: 24, withPad: " ", startingAt: 0)
                  + r.dtype.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)
                  + lens.padding(toLength: 19, withPad: " ", startingAt: 0)
                  + String(format: "%-11.3g", r.result.maxError) + (r.result.passed ? "pass    " : "FAIL    ") + r.kernel
                  + (r.result.violation.map { "  [\($0)]" } ?? ""))
            fflush(stdout)
        }
        let failed = rows.filter { !$0.result.passed }.count
        print("\(rows.count - failed) passed, \(failed) failed")
        if failed > 0 { throw HarnessError("\(failed) of \(rows.count) self-test case(s) failed (FAIL above)") }
    }
}
