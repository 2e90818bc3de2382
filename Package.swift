// swift-tools-version:5.9
// MLRA decode harness: tensor-parallel attention decode over MPI, measured.
import Foundation
import PackageDescription

// The MPI library, chosen at build time (`make MPI=mpich`, which sets MLRA_MPI): `openmpi`
// (default, pkg-config ompi-c) or `mpich` (pkg-config mpich); any other value is taken as
// the name of the library's pkg-config file (a site MPI, e.g. one a module puts on
// PKG_CONFIG_PATH). The code uses MPI-3 standard calls only (Sources/CMPI/shim.h), and
// every CSV row records the library's name and version. Build each library in its own
// scratch path (`make` does: .build, .build-mpich), so the two never mix objects.
let mpi = ProcessInfo.processInfo.environment["MLRA_MPI"].flatMap { $0.isEmpty ? nil : $0 } ?? "openmpi"
let mpiPkgConfig = ["openmpi": "ompi-c", "mpich": "mpich"][mpi] ?? mpi
let mpiApt = ["openmpi": ["libopenmpi-dev", "openmpi-bin"], "mpich": ["libmpich-dev", "mpich"]][mpi] ?? []

// MLRACore's portable kernels (Sources/MLRACore/Kernels) are Swift SIMD loops; for baseline
// x86-64 Swift emits SSE2 only (4 lanes, no FMA, no F16C). On an x86_64 host, build
// that target for Haswell's ISA (= x86-64-v3: AVX2, FMA, F16C; the clang importer of
// Swift 6.3 rejects the name "x86-64-v3"). Measured with it: the Swift SIMD path of
// TiledAttentionKernel (GQA 8 heads d128 f32 32K, 1 thread) 2.5 ms vs 3.1 ms for the
// sgemm path. -Ounchecked is not used (not measured): the kernels
// index through unsafe pointers, so it has no bounds checks to remove.
#if arch(x86_64)
let coreSwiftSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
#else
let coreSwiftSettings: [SwiftSetting] = []
#endif

let package = Package(
    name: "mlra-harness",
    products: [
        .executable(name: "mlra", targets: ["mlra"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // System libraries: MPI (C API; the library links through its pkg-config file) OpenBLAS (CBLAS) and FFTW.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: mpiPkgConfig,
                       providers: [.apt(mpiApt)]),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        // FFTW 3: the spectra of the noise probe (MLRABench/NoiseProbe.swift).
        .systemLibrary(name: "CFFTW", path: "Sources/CFFTW", pkgConfig: "fftw3",
                       providers: [.apt(["libfftw3-dev"])]),
        // AVX-512 inner loops of the decode kernel and the FMA peak loop, chosen at run
        // time from CPUID, so one binary serves nodes with and without AVX-512 (C: Swift
        // has no per-function target attribute). See include/CKernels.h.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // CUDA driver, NVRTC and NVML declared here and opened with dlopen at run time:
        // building needs no CUDA, and one binary serves CPU and GPU nodes.
        .target(name: "CCuda", linkerSettings: [.linkedLibrary("dl")]),
        // Math, variants, caches, kernels, safetensors. No MPI.
        .target(name: "MLRACore", dependencies: ["CBLAS", "CKernels"], swiftSettings: coreSwiftSettings),
        // The communicator over MPI (MLRACore's TPCollectives) and TP groups; the sharded
        // layer and model themselves are MLRACore's (Decode/, Model/).
        .target(name: "MLRAParallel", dependencies: ["MLRACore", "CMPI"]),
        // The GPU backend: device binding, NVRTC-compiled decode kernels (kernels/*.cu,
        // embedded in the binary), device caches, GPU calibration. No MPI.
        .target(name: "MLRACuda", dependencies: ["MLRACore", "CCuda"],
                resources: [.embedInCode("kernels/decode_attention.cu"), .embedInCode("kernels/calibrate.cu"),
                            .embedInCode("kernels/cache_fill.cu"), .embedInCode("kernels/layer_ops.cu")]),
        // Timing protocol, statistics, calibration, noise probe, CSV, sweep driver.
        .target(name: "MLRABench", dependencies: ["MLRAParallel", "MLRACore", "MLRACuda", "CBLAS", "CFFTW"]),
        .executableTarget(name: "mlra", dependencies: [
            "MLRABench", "MLRAParallel", "MLRACore", "MLRACuda",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Tolerance assertions and inputs shared by the test targets.
        .target(name: "MLRATestSupport", dependencies: ["MLRACore"], path: "Tests/MLRATestSupport"),
        .testTarget(name: "MLRACoreTests", dependencies: ["MLRACore", "MLRATestSupport"]),
        .testTarget(name: "MLRABenchTests", dependencies: ["MLRABench", "MLRACore", "MLRACuda", "MLRATestSupport"]),
        .testTarget(name: "MLRACudaTests", dependencies: ["MLRACuda", "MLRACore", "MLRATestSupport"]),
        // Runs the built `mlra` binary and real `mpirun` jobs as a user would (the MPI module's tests live here).
        .testTarget(name: "CLITests", dependencies: ["mlra", "MLRACore", "MLRABench", "MLRATestSupport"]),
    ]
)
